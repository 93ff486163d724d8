"""Thresholds with a finite-sample guarantee on the false-alarm rate of the whole verdict.

The null windows of a calibration (``modelops.monitoring.calibration``) give each signal a
sample of scores on windows that did not drift. :func:`joint_thresholds` turns them into one
threshold per chosen signal such that a clean window fires *any* of them at the asked rate:

1. **Normalize** each signal by its null's median and scale (1.4826 x the median absolute
   deviation, or the standard deviation when that is 0): ``z = (score - median) / scale``.
2. **Joint statistic**: per null window, ``T = max over the chosen signals of z``. A window
   fires at least one signal exactly when its ``T`` is above the threshold on ``T``, so
   calibrating ``T`` calibrates the verdict, not each signal on its own (no ``k x rate``).
3. **Order statistic with a confidence bound** (split-conformal on windows): with ``n`` null
   windows exchangeable with a clean production window, the share of clean windows above the
   ``r``-th smallest ``T`` is distributed as ``Beta(n + 1 - r, r)``, whatever the
   distribution of ``T``. The threshold is the lowest order statistic whose rate is at most
   ``rate`` with probability ``confidence`` (the Beta quantile). Averaged over calibrations
   it is also at most ``(n + 1 - r) / (n + 1)``.
4. Each signal's threshold is the joint threshold mapped back: ``median + T* x scale``.

When ``n`` is too small for even the largest null ``T`` to meet the bound (fewer than
:func:`windows_needed` windows), the rate is **not reachable**. Each threshold is then an
extrapolation with no guarantee: the largest of the joint maximum mapped back and, per
signal at ``rate / k`` (Bonferroni over the ``k`` signals), the largest of the empirical
quantile and the normal and log-normal fits' quantiles (:func:`extrapolated_threshold`).
:class:`JointThresholds` says so, with the bound that the null maximum does carry.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelops.config.errors import InputError

_SOURCE = "drift"
RULE = "joint order statistic (max of normalized scores), Beta bound"
EXTRAPOLATED = "extrapolated: max(joint null maximum, per-signal normal/log-normal fit at rate/k)"


def rate_bound(n: int, r: int, confidence: float) -> float:
    """Upper ``confidence`` bound on the rate of clean windows above the ``r``-th smallest of
    ``n`` null statistics (``Beta(n + 1 - r, r)``)."""
    from scipy.stats import beta

    if not 1 <= r <= n:
        raise InputError(_SOURCE, "rank", f"must be in [1, {n}], got {r}")
    return float(beta.ppf(confidence, n + 1 - r, r))


def windows_needed(rate: float, confidence: float) -> int:
    """Null windows needed so that their maximum holds ``rate`` with ``confidence``:
    the smallest ``n`` with ``(1 - rate) ** n <= 1 - confidence``."""
    return int(math.ceil(math.log(1.0 - confidence) / math.log(1.0 - rate)))


def _rank(n: int, rate: float, confidence: float) -> int | None:
    """The smallest rank ``r`` (lowest threshold) whose bound is at most ``rate``."""
    if rate_bound(n, n, confidence) > rate:
        return None
    lo, hi = 1, n  # the bound falls as r grows: find the first r that meets it
    while lo < hi:
        mid = (lo + hi) // 2
        if rate_bound(n, mid, confidence) <= rate:
            hi = mid
        else:
            lo = mid + 1
    return lo


def extrapolated_threshold(null: Sequence[float], rate: float) -> float:
    """A ``1 - rate`` quantile past the sample: the largest of the empirical quantile and
    the quantiles of a normal and (all values positive) a log-normal fit. No guarantee."""
    values = np.asarray(null, dtype=float)
    q = 1.0 - rate
    z = statistics.NormalDist().inv_cdf(q)
    estimates = [float(np.quantile(values, q, method="higher"))]
    if values.size > 1:
        estimates.append(float(values.mean() + z * values.std(ddof=1)))
        if (values > 0).all():
            logs = np.log(values)
            estimates.append(float(np.exp(logs.mean() + z * logs.std(ddof=1))))
    return max(estimates)


def _center_scale(values: np.ndarray) -> tuple[float, float]:
    center = float(np.median(values))
    scale = 1.4826 * float(np.median(np.abs(values - center)))
    if scale <= 0 and values.size > 1:
        scale = float(values.std(ddof=1))
    if not scale > 0:
        scale = max(abs(center) * 1e-3, 1e-9)
    return center, scale


@dataclass
class JointThresholds:
    """Thresholds for a set of signals, and what they guarantee."""

    thresholds: dict[str, float]
    rate: float
    confidence: float
    windows: int
    windows_needed: int
    rate_bound: float
    """The rate that holds with ``confidence`` (at most ``rate`` when reachable)."""
    reachable: bool
    rule: str
    notes: list[str] = field(default_factory=list)

    def sentence(self) -> str:
        """One sentence for reports and metadata."""
        confidence = f"{self.confidence:.0%}"
        if not self.thresholds:
            return "no signal chosen"
        if self.reachable:
            return (
                f"false-alarm rate of the verdict at most {self.rate:g} with {confidence} "
                f"confidence ({self.windows} null windows)"
            )
        return (
            f"false-alarm rate {self.rate:g} NOT reachable: {self.windows} null windows hold "
            f"only {self.rate_bound:.3g} with {confidence} confidence (needs "
            f"{self.windows_needed}); thresholds extrapolated"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return {
            "thresholds": {k: float(v) for k, v in self.thresholds.items()},
            "rate": float(self.rate),
            "confidence": float(self.confidence),
            "windows": int(self.windows),
            "windows_needed": int(self.windows_needed),
            "rate_bound": float(self.rate_bound),
            "reachable": bool(self.reachable),
            "rule": self.rule,
            "notes": list(self.notes),
        }


def joint_thresholds(
    null: Mapping[str, Sequence[float]],
    signals: Sequence[str],
    *,
    rate: float,
    confidence: float,
) -> JointThresholds:
    """Per-signal thresholds so that a clean window fires any of ``signals`` at ``rate``.

    ``null`` holds each signal's scores on the same null windows, in the same order.
    """
    if not 0.0 < rate < 0.5:
        raise InputError(_SOURCE, "false_alarm_rate", f"must be in (0, 0.5), got {rate!r}")
    if not 0.5 <= confidence < 1.0:
        raise InputError(_SOURCE, "confidence", f"must be in [0.5, 1), got {confidence!r}")
    needed = windows_needed(rate, confidence)
    chosen = list(dict.fromkeys(signals))
    missing = [s for s in chosen if s not in null]
    if missing:
        raise InputError(_SOURCE, "signals", f"no null scores for {', '.join(missing)}")
    if not chosen:
        return JointThresholds({}, rate, confidence, 0, needed, 0.0, True, RULE)
    matrix = np.asarray([np.asarray(null[s], dtype=float) for s in chosen])
    if matrix.ndim != 2 or matrix.shape[1] == 0 or not np.isfinite(matrix).all():
        raise InputError(
            _SOURCE, "null_scores",
            "must hold the same non-empty number of finite scores for every signal",
        )  # fmt: skip
    n = matrix.shape[1]
    centers, scales = zip(*(_center_scale(row) for row in matrix), strict=True)
    z = (matrix - np.asarray(centers)[:, None]) / np.asarray(scales)[:, None]
    joint = np.sort(z.max(axis=0))
    rank = _rank(n, rate, confidence)
    level = float(joint[rank - 1 if rank is not None else -1])
    thresholds = {
        s: float(c + level * sc) for s, c, sc in zip(chosen, centers, scales, strict=True)
    }
    if rank is not None:
        bound, reachable, rule = rate_bound(n, rank, confidence), True, RULE
    else:
        bound, reachable, rule = rate_bound(n, n, confidence), False, EXTRAPOLATED
        for s, row in zip(chosen, matrix, strict=True):
            thresholds[s] = max(thresholds[s], extrapolated_threshold(row, rate / len(chosen)))
    return JointThresholds(thresholds, rate, confidence, n, needed, bound, reachable, rule)
