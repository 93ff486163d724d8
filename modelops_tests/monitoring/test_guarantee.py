"""Thresholds with a guarantee: on synthetic null windows whose true tail is known, the
measured false-alarm rate of the whole verdict stays within its bound, several signals
together included; too few windows say so."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from modelops.config.errors import InputError
from modelops.monitoring.guarantee import joint_thresholds, rate_bound, windows_needed

RATE, CONFIDENCE = 0.01, 0.9


def _null(rng, n: int, rho: float = 0.0) -> dict[str, np.ndarray]:
    """Three signals: a normal, a log-normal and a correlated normal (known distributions)."""
    a = rng.normal(size=n)
    b = rng.lognormal(sigma=0.7, size=n)
    c = rho * a + np.sqrt(1 - rho**2) * rng.normal(size=n)
    return {"a": a, "b": b, "c": c}


def _true_rate(thresholds: dict[str, float], rho: float) -> float:
    """The exact chance that a fresh clean window fires any signal, by numerical
    integration over the known distributions (a and c jointly normal)."""
    pb = stats.lognorm.sf(thresholds["b"], s=0.7)
    both = stats.multivariate_normal(mean=[0, 0], cov=[[1, rho], [rho, 1]])
    pac = 1 - both.cdf([thresholds["a"], thresholds["c"]])
    return float(1 - (1 - pb) * (1 - pac))


@pytest.mark.parametrize("rho", [0.0, 0.9])
def test_verdict_rate_holds_with_the_stated_confidence(rho):
    n = windows_needed(RATE, CONFIDENCE)
    assert n == 230
    rng = np.random.default_rng(7)
    rates = []
    for _ in range(150):  # 150 calibrations, each with its own null windows
        joint = joint_thresholds(
            _null(rng, n, rho), ["a", "b", "c"], rate=RATE, confidence=CONFIDENCE
        )
        assert joint.reachable and joint.rate_bound <= RATE
        rates.append(_true_rate(joint.thresholds, rho))
    rates = np.array(rates)
    # P(true rate > RATE) <= 1 - CONFIDENCE = 0.1; allow binomial noise over 150 draws.
    assert np.mean(rates > RATE) <= 0.1 + 3 * np.sqrt(0.1 * 0.9 / 150)
    assert rates.mean() <= RATE


def test_joint_correction_against_per_signal_thresholds():
    """Three independent signals each at the rate would fire about 3x the rate; the joint
    thresholds hold the rate for the verdict, and correlated signals need less correction."""
    rng = np.random.default_rng(11)
    n = 20_000
    null = _null(rng, n)
    per_signal = {s: float(np.quantile(v, 1 - RATE)) for s, v in null.items()}
    assert _true_rate(per_signal, 0.0) == pytest.approx(3 * RATE, rel=0.15)
    joint = joint_thresholds(null, ["a", "b", "c"], rate=RATE, confidence=CONFIDENCE)
    assert _true_rate(joint.thresholds, 0.0) <= RATE
    assert _true_rate(joint.thresholds, 0.0) >= RATE / 3 * 0.8  # not cruder than Bonferroni
    for signal in null:
        assert joint.thresholds[signal] > per_signal[signal]
    correlated = _null(rng, n, rho=0.99)
    alike = joint_thresholds(correlated, ["a", "c"], rate=RATE, confidence=CONFIDENCE)
    apart = joint_thresholds(null, ["a", "c"], rate=RATE, confidence=CONFIDENCE)
    assert alike.thresholds["a"] < apart.thresholds["a"]
    # One signal alone: the plain order statistic of its null.
    single = joint_thresholds(null, ["a"], rate=RATE, confidence=CONFIDENCE)
    assert single.thresholds["a"] in set(null["a"].tolist())


def test_bound_and_unreachable_rates():
    assert rate_bound(100, 100, 0.9) == pytest.approx(1 - 0.1 ** (1 / 100), rel=1e-9)
    assert rate_bound(1000, 990, 0.9) < rate_bound(1000, 980, 0.9)
    assert windows_needed(0.002, 0.9) == 1151
    rng = np.random.default_rng(3)
    null = _null(rng, 50)
    joint = joint_thresholds(null, ["a", "b"], rate=RATE, confidence=CONFIDENCE)
    assert not joint.reachable and joint.windows_needed == 230
    assert joint.rate_bound == pytest.approx(1 - 0.1 ** (1 / 50))
    assert "NOT reachable" in joint.sentence() and "needs 230" in joint.sentence()
    for signal in ("a", "b"):  # extrapolated past the sample, never inside it
        assert joint.thresholds[signal] >= null[signal].max()
    assert joint_thresholds(null, [], rate=RATE, confidence=CONFIDENCE).thresholds == {}
    with pytest.raises(InputError, match="signals"):
        joint_thresholds(null, ["zzz"], rate=RATE, confidence=CONFIDENCE)
    with pytest.raises(InputError, match="false_alarm_rate"):
        joint_thresholds(null, ["a"], rate=0.0, confidence=CONFIDENCE)
