"""Anytime-valid evidence by betting: test supermartingales, a confidence sequence and
p-to-e calibration (Waudby-Smith & Ramdas, "Estimating means of bounded random variables
by betting", JRSS B 2024; Vovk & Wang, "E-values: calibration, combination and
applications", Annals of Statistics 2021).

A *bet* on one observation with gain ``g`` (known bounds, ``E[g | past] <= 0`` under the
null) multiplies the wealth by ``1 + lam * g``, with ``lam >= 0`` small enough that the
factor stays positive. Under the null the wealth is a nonnegative supermartingale started
at 1, so by Ville's inequality it ever reaches ``1 / alpha`` with probability at most
``alpha``, however long it runs and however often it is looked at. :func:`mixture_update`
keeps one wealth per ``lam`` of a fixed grid and averages them (an average of test
supermartingales is one): no tuning, no need to guess the effect size, at a cost of a few
nats against the best fixed bet in hindsight.

:func:`cs_update` is the predictable-plug-in empirical-Bernstein confidence sequence for
the mean of values in [0, 1] (WSR 2024, Theorem 2), kept as running sums so it can go on
from a stored state. :func:`p_to_e` turns a p-value into an e-value with the admissible
calibrator ``e(p) = (1 - p + p ln p) / (p (ln p)^2)`` (the mixture of ``k p^(k - 1)`` over
``k`` in (0, 1)), whose integral over [0, 1] is 1.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import logsumexp

CS_CAP = 0.5
"""The largest bet of the confidence sequence (WSR's ``c``)."""


def mixture_update(
    log_wealth: np.ndarray, lams: np.ndarray, gains: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Bet every ``lams[k]`` on each gain, in order. Returns the new log wealth per bet and
    the mixture's log e-value after each gain (``log mean_k wealth_k``), so a crossing
    between two stored states is seen too."""
    gains = np.asarray(gains, dtype=float)
    log_wealth = np.asarray(log_wealth, dtype=float)
    if gains.size == 0:
        return log_wealth, np.empty(0)
    factors = 1.0 + gains[:, None] * lams[None, :]
    if (factors <= 0).any():
        raise ValueError("betting: a bet would lose everything (gain outside its bounds)")
    path = log_wealth[None, :] + np.cumsum(np.log(factors), axis=0)
    top = path.max(axis=1)
    return path[-1], top + np.log(np.exp(path - top[:, None]).mean(axis=1))


def mixture_log_e(log_wealth: np.ndarray) -> float:
    """The mixture's log e-value: the log of the mean wealth over the grid."""
    return float(logsumexp(np.asarray(log_wealth, dtype=float)) - math.log(len(log_wealth)))


def rate_bets(null_rate: float, count: int = 12) -> np.ndarray:
    """Bets against "flag rate <= null_rate" on gains ``flag - null_rate``: each is the
    likelihood ratio of an alternative rate ``r`` (1.1 to 6 times the null rate, below
    0.95) against the null, ``lam = (r - null_rate) / (null_rate (1 - null_rate))``.

    The range is a choice of power: a 5 % share of unknown requests flagged at 0.8 over a
    null rate of 0.05 (1.75 times it) crossed 1/0.004 within 600 rows in 61 % of 3,000
    simulated streams with it, 56 % with 1.05 to 19 times, 76 % for the likelihood ratio
    of the true rate (the most any bet can); larger shares cross in a few rows anyway."""
    if not 0.0 < null_rate < 1.0:
        raise ValueError(f"betting: the null rate must be in (0, 1), got {null_rate!r}")
    top = max(1.2, min(6.0, 0.95 / null_rate))
    rates = null_rate * np.geomspace(1.1, top, count)
    return (rates - null_rate) / (null_rate * (1.0 - null_rate))


P_LEVELS = (0.01, 0.02, 0.05, 0.1)
"""The p-value bets' levels ``tau``: a bet on ``1[p <= tau] / tau``. Up to 0.1: higher
levels add little power against a small share of unknown requests (they are mostly far in
the tail) and bet on the bulk of the scores, where a benign difference between the
calibration rows and traffic (Banking77's test.csv against its train.csv) shows first
(benchmarks/RESULTS.md, issue 24)."""
P_LAMS = tuple(np.geomspace(0.01, 0.9, 10).tolist())


def p_value_update(log_wealth: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bet on p-values that are uniform under the null: for each level ``tau`` of
    :data:`P_LEVELS` and fraction ``lam`` of :data:`P_LAMS`, the wealth is multiplied by
    ``1 - lam + lam * 1[p <= tau] / tau`` (the calibrator ``1[p <= tau] / tau`` has mean 1
    under the null). Returns the new log wealth per (tau, lam), flattened, and the
    mixture's log e-value after each p-value."""
    p = np.asarray(p, dtype=float)
    log_wealth = np.asarray(log_wealth, dtype=float)
    if p.size == 0:
        return log_wealth, np.empty(0)
    taus, lams = np.asarray(P_LEVELS), np.asarray(P_LAMS)
    gains = (p[:, None] <= taus[None, :]) / taus[None, :] - 1.0  # rows x levels
    steps = np.log1p(gains[:, :, None] * lams[None, None, :]).reshape(p.size, -1)
    path = log_wealth[None, :] + np.cumsum(steps, axis=0)
    top = path.max(axis=1)
    return path[-1], top + np.log(np.exp(path - top[:, None]).mean(axis=1))


def p_value_bet_count() -> int:
    """How many wealths :func:`p_value_update` keeps."""
    return len(P_LEVELS) * len(P_LAMS)


def mean_bets(null_mean: float, count: int = 20) -> np.ndarray:
    """Bets against "mean >= null_mean" of values in [0, 1], on gains
    ``null_mean - value``: fractions 0.003 to 0.6 of the largest safe bet
    ``1 / (1 - null_mean)``."""
    if not 0.0 < null_mean < 1.0:
        raise ValueError(f"betting: the null mean must be in (0, 1), got {null_mean!r}")
    return np.geomspace(0.003, 0.6, count) / (1.0 - null_mean)


def e_value_bets(count: int = 12) -> np.ndarray:
    """Bets on gains ``e - 1`` of e-values (at least -1): ``lam`` from 0.02 to 0.98 (1
    would be the plain product of the e-values, which an e-value of 0 would end)."""
    return np.geomspace(0.02, 0.98, count)


def p_to_e(p: np.ndarray | float) -> np.ndarray:
    """The admissible calibrator ``(1 - p + p ln p) / (p (ln p)^2)`` (0.5 at p = 1)."""
    p = np.clip(np.asarray(p, dtype=float), 1e-300, 1.0)
    log_p = np.log(p)
    with np.errstate(divide="ignore", invalid="ignore"):
        e = (1.0 - p + p * log_p) / (p * log_p * log_p)
    return np.where(p > 1.0 - 1e-9, 0.5, e)


def conformal_p_value(score: float, null: np.ndarray) -> float:
    """``(1 + #{null >= score}) / (n + 1)``: the rank p-value of a score among null ones."""
    null = np.asarray(null, dtype=float)
    return float((1 + np.count_nonzero(null >= score)) / (null.size + 1))


def cs_fresh() -> dict[str, float]:
    """The running sums of an empty confidence sequence."""
    return {
        "n": 0, "sum": 0.0, "sum_dev2": 0.0, "sum_lam": 0.0, "sum_lam_x": 0.0,
        "sum_v_psi": 0.0, "low": 0.0, "high": 1.0,
    }  # fmt: skip


def cs_update(sums: dict[str, float], values: np.ndarray, alpha: float) -> dict[str, float]:
    """The confidence sequence (level ``1 - alpha``, two-sided, uniformly over time) for
    the mean of values in [0, 1] after ``values`` in order: ``low``/``high`` at the last
    value. When the mean moves, it covers the bet-weighted average of the means so far."""
    x = np.asarray(values, dtype=float)
    out = dict(sums)
    if x.size == 0:
        return out
    t = out["n"] + np.arange(1, x.size + 1)  # the index of each value
    cum = out["sum"] + np.cumsum(x)
    mean_before = (0.5 + np.concatenate(([out["sum"]], cum[:-1]))) / t
    mean_after = (0.5 + cum) / (t + 1)
    dev2 = out["sum_dev2"] + np.cumsum((x - mean_after) ** 2)
    var_before = (0.25 + np.concatenate(([out["sum_dev2"]], dev2[:-1]))) / t
    log_term = math.log(2.0 / alpha)
    lam = np.minimum(np.sqrt(2 * log_term / (var_before * t * np.log1p(t))), CS_CAP)
    psi = (-np.log1p(-lam) - lam) / 4.0
    sum_lam = out["sum_lam"] + np.cumsum(lam)
    sum_lam_x = out["sum_lam_x"] + np.cumsum(lam * x)
    sum_v_psi = out["sum_v_psi"] + np.cumsum(4.0 * (x - mean_before) ** 2 * psi)
    centre = sum_lam_x / sum_lam
    half = (log_term + sum_v_psi) / sum_lam
    out.update(
        n=int(t[-1]),
        sum=float(cum[-1]),
        sum_dev2=float(dev2[-1]),
        sum_lam=float(sum_lam[-1]),
        sum_lam_x=float(sum_lam_x[-1]),
        sum_v_psi=float(sum_v_psi[-1]),
        low=float(max(centre[-1] - half[-1], 0.0)),
        high=float(min(centre[-1] + half[-1], 1.0)),
    )
    return out
