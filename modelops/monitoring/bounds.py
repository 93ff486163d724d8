"""Bounds of a proportion: one-sided Clopper-Pearson bounds (the exact binomial bounds the
sequential evidence, ``modelops.monitoring.evidence``, and the out-of-scope model take their
references at) and the split-conformal threshold of the out-of-scope model with the
distribution of the flag rate it gives (``modelops.monitoring.out_of_scope``). scipy is
imported when a bound is asked for, not when the module loads."""

from __future__ import annotations

import math

import numpy as np


def clopper_pearson_low(successes: int, n: int, alpha: float) -> float:
    """A lower bound of the proportion that holds with probability ``1 - alpha``."""
    from scipy.special import betaincinv

    if successes <= 0:
        return 0.0
    return float(betaincinv(successes, n - successes + 1, alpha))


def clopper_pearson_high(successes: int, n: int, alpha: float) -> float:
    """An upper bound of the proportion that holds with probability ``1 - alpha``."""
    from scipy.special import betaincinv

    if successes >= n:
        return 1.0
    return float(betaincinv(successes + 1, n - successes, 1 - alpha))


def conformal_threshold(calibration_scores: np.ndarray, rate: float) -> float:
    """The ``ceil((n + 1)(1 - rate))``-th smallest calibration score (inf past ``n``):
    flagging scores above it flags an exchangeable in-scope text with probability at most
    ``rate``."""
    scores = np.sort(np.asarray(calibration_scores, dtype=np.float64))
    if not 0 < rate < 1:
        raise ValueError(f"out_of_scope: false_flag_rate must be in (0, 1), got {rate}")
    rank = conformal_rank(len(scores), rate)
    return math.inf if rank > len(scores) else float(scores[rank - 1])


def conformal_rank(n: int, rate: float) -> int:
    """``ceil((n + 1)(1 - rate))``: the rank of the threshold among ``n`` calibration
    scores (past ``n``: no finite threshold keeps ``rate``)."""
    return math.ceil((n + 1) * (1 - rate))


def rate_posterior(n: int, rate: float, measured: tuple[int, int] | None) -> tuple[int, int] | None:
    """The Beta(a, b) the in-scope flag rate of the conformal threshold of ``n``
    calibration rows at ``rate`` follows: over calibration draws Beta(n + 1 - r, r) (``r``
    the threshold's rank; mean about ``rate``), updated with ``measured`` (flagged, rows)
    on other held-out rows. None for an infinite threshold (nothing is ever flagged)."""
    rank = conformal_rank(n, rate)
    if rank > n:
        return None
    flagged, rows = measured if measured is not None else (0, 0)
    return n + 1 - rank + flagged, rank + rows - flagged


def in_scope_rate(n: int, rate: float, measured: tuple[int, int] | None) -> float:
    """The estimated flag rate of in-scope texts: the mean of :func:`rate_posterior`,
    ``(n + 1 - r + flagged) / (n + 1 + rows)``; 0 for an infinite threshold. Steadier than
    the measured share alone on small splits, closer to this threshold's own rate than
    ``rate`` on large ones."""
    posterior = rate_posterior(n, rate, measured)
    if posterior is None:
        return 0.0
    a, b = posterior
    return a / (a + b)
