"""Severity before action: is the model hurt, and does the recipe's policy retrain?

Drift signals say the data moved; :func:`assess` says how much accuracy that costs: the
label-free estimate and its drop from the reference accuracy, each with an interval, and
where feedback labels exist, the measured accuracy and its drop. :func:`decide_retraining`
applies the recipe's ``retraining`` policy (``modelops.config.monitoring.RetrainingSettings``)
to the verdict and the impact: ``retrain``, ``warn`` (the data moved, the model is not shown
hurt) or ``ok``.

Intervals are normal approximations at the calibration's confidence (two-sided): the
estimate's spread is that of a window of Bernoulli outcomes with the calibrated
probabilities, the reference accuracy's that of the held-out rows it was measured on, and
the measured accuracy's a Wilson interval. Rows flagged out of scope count as likely
errors; the estimate's interval then also spans the uncertainty of the novel share
(:func:`_flagged_estimate`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelops.config.monitoring import RetrainingSettings
from modelops.monitoring.estimate import ConfidenceCalibrator
from modelops.monitoring.evidence import WHAT, EvidenceState
from modelops.monitoring.verdict import ACCURACY, Verdict


def _z(confidence: float) -> float:
    return statistics.NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson(successes: int, total: int, confidence: float) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if total <= 0:
        return (0.0, 1.0)
    z = _z(confidence)
    p = successes / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass
class Impact:
    """What the window costs in accuracy (fractions in [0, 1]; a drop is reference minus)."""

    confidence: float
    estimated_accuracy: float
    estimated_interval: tuple[float, float]
    reference_accuracy: float | None
    estimated_drop: float | None
    estimated_drop_interval: tuple[float, float] | None
    labelled_rows: int = 0
    measured_accuracy: float | None = None
    measured_interval: tuple[float, float] | None = None
    measured_drop: float | None = None
    measured_drop_interval: tuple[float, float] | None = None
    new_labels: list[str] = field(default_factory=list)
    novel_share: float | None = None
    """Share of rows flagged out of scope (``modelops.monitoring.out_of_scope``)."""
    unadjusted_accuracy: float | None = None
    """The plain confidence-based estimate, before the flagged rows were counted as wrong."""
    novel_share_estimate: float | None = None
    """The estimated share of novel rows: the flagged share beyond the in-scope flag rate."""
    novel_share_interval: tuple[float, float] | None = None
    """Its interval (from the flagged share's Wilson interval)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            if isinstance(value, tuple):
                value = [float(v) for v in value]
            elif isinstance(value, (float, np.floating)):
                value = float(value)
            out[key] = value
        return out


def assess(
    calibrator: ConfidenceCalibrator,
    confidence_scores: np.ndarray,
    *,
    predicted: Sequence[str],
    labels: Sequence[str | None] | None,
    known_labels: set[str],
    confidence: float = 0.9,
    novel: np.ndarray | None = None,
    novel_by_chance: float = 0.0,
    flagged_accuracy: float | None = None,
    band: tuple[np.ndarray, float, float | None] | None = None,
) -> Impact:
    """The window's accuracy, estimated from ``confidence_scores`` and measured on the rows
    whose ``labels`` are known, against the reference accuracy the calibrator was fitted at.
    ``known_labels`` are the labels the adapter's reference holds; a feedback label outside
    them is a new label.

    ``novel`` flags the rows out of scope (``modelops.monitoring.out_of_scope``), of which
    ``novel_by_chance`` (the out-of-scope model's ``held_out_flag_rate``) are flagged on
    in-scope rows; ``flagged_accuracy`` is the adapter's accuracy on flagged in-scope rows
    (default: their mean calibrated probability); ``band``: each row past the out-of-scope
    model's wider threshold, its in-scope rate and accuracy. See :func:`_flagged_estimate`."""
    z = _z(confidence)
    p = calibrator.predict(np.asarray(confidence_scores, dtype=float))
    n = p.size
    estimate = plain = float(p.mean())
    var_est = float((p * (1 - p)).sum()) / (n * n)
    low = high = estimate
    share = None
    if novel is not None:
        share = _flagged_estimate(
            p, np.asarray(novel, dtype=bool), novel_by_chance, flagged_accuracy, confidence, band
        )
        estimate, (low, high), var_est = share.estimate, share.range, share.variance
    half = z * math.sqrt(var_est)
    interval = (max(0.0, low - half), min(1.0, high + half))
    ref = calibrator.fitted_accuracy
    var_ref = 0.0
    if ref is not None and calibrator.n_fitted:
        var_ref = ref * (1 - ref) / calibrator.n_fitted
    drop = drop_interval = None
    if ref is not None:
        drop = ref - estimate
        half = z * math.sqrt(var_est + var_ref)
        drop_interval = (ref - high - half, ref - low + half)
    impact = Impact(confidence, estimate, interval, ref, drop, drop_interval)
    if share is not None:
        impact.novel_share, impact.unadjusted_accuracy = share.flagged, plain
        impact.novel_share_estimate = share.novel
        impact.novel_share_interval = share.novel_interval
    return _measured(impact, predicted, labels, known_labels, z, var_ref)


@dataclass(frozen=True)
class _FlaggedEstimate:
    flagged: float
    novel: float
    novel_interval: tuple[float, float]
    estimate: float
    range: tuple[float, float]
    """The estimate at the low and the high end of the novel share's interval."""
    variance: float


def _flagged_estimate(
    p: np.ndarray,
    flags: np.ndarray,
    rate: float,
    flagged_accuracy: float | None,
    confidence: float,
    band: tuple[np.ndarray, float, float | None] | None = None,
) -> _FlaggedEstimate:
    """The estimate with flagged rows counted as likely errors.

    With ``f`` the flagged share, ``r`` the in-scope flag rate and ``v`` the novel share,
    ``f = r (1 - v) + v`` when every novel row is flagged, so ``v = (f - r) / (1 - r)``
    (clipped to [0, 1]). The in-scope flagged rows are then ``min(r (1 - v), f) n``, right
    at ``flagged_accuracy``; the other flagged rows (novel) are counted wrong and the
    unflagged rows at their calibrated probabilities::

        accuracy = (sum of p over unflagged rows + min(r (1 - v), f) n a) / n

    Novel rows the flag misses would count at their calibrated probability, so the
    estimate would err high when detection is weak. ``band`` (``wide``: each row past a
    lower threshold, that threshold's in-scope rate and the in-scope accuracy between the
    two thresholds) widens the count: ``v`` comes from the share past the lower threshold,
    where far fewer novel rows hide, and the rows between the thresholds are in scope up
    to their expected share, at the band's accuracy, novel beyond it. The interval's ends
    are this estimate at the ends of ``v``'s interval (from the Wilson interval of the
    share ``v`` comes from), widened by the Bernoulli spread of the rows counted at a
    probability."""
    n = p.size
    flagged = float(flags.mean()) if n else 0.0
    rate = min(max(float(rate), 0.0), 0.999)
    accuracy = flagged_accuracy
    if accuracy is None:
        accuracy = float(p[flags].mean()) if flags.any() else 0.0
    wide, wide_rate, band_accuracy = (flags, rate, accuracy) if band is None else band
    wide = np.asarray(wide, dtype=bool) | flags
    wide_rate = min(max(float(wide_rate), rate), 0.999)
    inside = wide & ~flags
    if band_accuracy is None:
        band_accuracy = float(p[inside].mean()) if inside.any() else 0.0
    inside_share = float(inside.mean()) if n else 0.0
    below_sum = float(p[~wide].sum())

    def novel_of(share: float) -> float:
        return min(1.0, max(0.0, (share - wide_rate) / (1 - wide_rate)))

    def at(novel: float) -> tuple[float, float, float]:
        in_flagged = min(rate * (1 - novel), flagged) * n
        in_band = min((wide_rate - rate) * (1 - novel), inside_share) * n
        total = below_sum + in_flagged * accuracy + in_band * band_accuracy
        return total / n, in_flagged, in_band

    novel = novel_of(float(wide.mean()) if n else 0.0)
    estimate, in_flagged, in_band = at(novel)
    f_low, f_high = wilson(int(wide.sum()), n, confidence)
    novel_low, novel_high = novel_of(f_low), novel_of(f_high)
    below = p[~wide]
    variance = (
        float((below * (1 - below)).sum())
        + in_flagged * accuracy * (1 - accuracy)
        + in_band * band_accuracy * (1 - band_accuracy)
    ) / (n * n)
    return _FlaggedEstimate(
        flagged=flagged,
        novel=novel,
        novel_interval=(novel_low, novel_high),
        estimate=estimate,
        range=(at(novel_high)[0], at(novel_low)[0]),
        variance=variance,
    )


def _measured(
    impact: Impact,
    predicted: Sequence[str],
    labels: Sequence[str | None] | None,
    known_labels: set[str],
    z: float,
    var_ref: float,
) -> Impact:
    """``impact`` with the accuracy measured on the labelled rows, when there are any."""
    ref = impact.reference_accuracy
    if labels is None:
        return impact
    pairs = [(pr, lb) for pr, lb in zip(predicted, labels, strict=True) if lb is not None]
    impact.new_labels = sorted({lb for _, lb in pairs} - set(known_labels))
    if not pairs:
        return impact
    right = sum(pr == lb for pr, lb in pairs)
    m = len(pairs)
    impact.labelled_rows = m
    impact.measured_accuracy = right / m
    impact.measured_interval = wilson(right, m, impact.confidence)
    if ref is not None:
        acc = impact.measured_accuracy
        impact.measured_drop = ref - acc
        half = z * math.sqrt(max(acc * (1 - acc), 0.25 / m) / m + var_ref)
        impact.measured_drop_interval = (impact.measured_drop - half, impact.measured_drop + half)
    return impact


@dataclass
class Decision:
    """``retrain``: launch a run; ``warn``: the data moved, the model is not shown hurt;
    ``ok``: nothing to do. ``reasons`` say what met the policy."""

    action: str
    reasons: list[str]
    sentence: str

    @property
    def retrain(self) -> bool:
        return self.action == "retrain"


def decide_retraining(
    verdict: Verdict,
    impact: Impact | None,
    policy: RetrainingSettings,
    evidence: EvidenceState | None = None,
) -> Decision:
    """Apply the recipe's retraining policy to a verdict and its impact; with
    ``evidence``, to the evidence accumulated since the champion started instead of the
    one window (:func:`decide_on_evidence`)."""
    if evidence is not None:
        return decide_on_evidence(evidence, impact, policy)
    if policy.trigger == "drift" or impact is None:
        if verdict.drifted:
            return Decision("retrain", ["drift"], "Retrain: the data drifted (trigger: drift).")
        return Decision("ok", [], "No drift.")
    reasons = []
    if verdict.drifted and ACCURACY in verdict.fired:
        reasons.append("estimated accuracy below monitoring.min_estimated_accuracy")
    drop = impact.estimated_drop
    if verdict.drifted and drop is not None and drop >= policy.min_estimated_drop:
        reasons.append(
            f"drift with an estimated drop of {100 * drop:.1f} points "
            f"(>= {100 * policy.min_estimated_drop:g})"
        )
    reasons += _feedback_reasons(impact, policy)
    if reasons:
        return Decision("retrain", reasons, "Retrain: " + "; ".join(reasons) + ".")
    if verdict.drifted:
        shown = "" if drop is None else f" (estimated drop {100 * drop:.1f} points)"
        return Decision(
            "warn", [], f"Warn: the data moved, but the model is not shown hurt{shown}."
        )
    return Decision("ok", [], "No drift.")


def _feedback_reasons(impact: Impact, policy: RetrainingSettings) -> list[str]:
    """The window's feedback that retrains under ``impact``: a measured drop (enough
    labelled rows, its interval above 0) or labels the reference never had."""
    reasons = []
    measured = impact.measured_drop
    if (
        policy.min_measured_drop is not None
        and measured is not None
        and impact.labelled_rows >= policy.min_labelled_rows
        and measured >= policy.min_measured_drop
        and impact.measured_drop_interval is not None
        and impact.measured_drop_interval[0] > 0
    ):
        reasons.append(
            f"measured drop of {100 * measured:.1f} points on {impact.labelled_rows} labelled "
            f"rows (>= {100 * policy.min_measured_drop:g}, interval above 0)"
        )
    if policy.on_new_labels and impact.new_labels:
        reasons.append("new labels in feedback: " + ", ".join(impact.new_labels[:5]))
    return reasons


def decide_on_evidence(
    evidence: EvidenceState, impact: Impact | None, policy: RetrainingSettings
) -> Decision:
    """The policy on the evidence accumulated since the champion started
    (``modelops.monitoring.evidence``). ``trigger: impact``: retrain when the estimated
    accuracy is below the reference by more than ``min_estimated_drop`` with confidence
    (test ``policy_drop`` crossed), or on the window's feedback (measured drop, new labels);
    any other crossed test (a smaller drop, however steady; novelty; drift) warns.
    ``trigger: drift``: any crossed test retrains. ``reasons`` name the crossed tests as
    ``evidence: <test>``."""
    crossed = evidence.crossed()
    told = [f"evidence: {name} ({WHAT[name]})" for name in crossed]
    retraining = [] if impact is None else _feedback_reasons(impact, policy)
    if policy.trigger == "drift":
        retraining = told + retraining
    elif "policy_drop" in crossed:
        retraining.insert(0, told[crossed.index("policy_drop")])
    summary = evidence.sentence()
    if retraining:
        return Decision("retrain", retraining, f"Retrain: {'; '.join(retraining)}. {summary}")
    if crossed:
        return Decision(
            "warn",
            told,
            f"Warn: {'; '.join(told)}, not enough to retrain (trigger: {policy.trigger}). "
            + summary,
        )
    return Decision("ok", [], f"No accumulated evidence of drift. {summary}")
