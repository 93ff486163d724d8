"""The verdict on one window: which signals fired against the calibrated thresholds, and why.

:func:`verdict` compares the scores of ``modelops.monitoring.evidently_scores.signal_scores``
with the joint thresholds of a ``modelops.monitoring.calibration.Calibration`` for the
signals checked (a signal fires when its score is above its threshold; together they hold
the recipe's false-alarm rate for the whole verdict) and, when asked, the label-free
accuracy estimate with a floor. The verdict says whether the rate is reachable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelops.config.errors import InputError
from modelops.config.monitoring import SIGNALS
from modelops.monitoring.calibration import Calibration

_SOURCE = "drift"

ACCURACY = "estimated_accuracy"  # listed in Verdict.fired when the accuracy estimate is too low


@dataclass
class Verdict:
    """Whether a window drifted, which signals fired, and why (one sentence)."""

    drifted: bool
    fired: list[str]
    scores: dict[str, float]
    thresholds: dict[str, float]
    estimated_accuracy: float | None
    reason: str
    guarantee: dict[str, Any] = field(default_factory=dict)
    """What the thresholds hold: ``rate``, ``confidence``, ``rate_bound``, ``reachable``..."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return {
            "drifted": bool(self.drifted),
            "fired": list(self.fired),
            "scores": {k: float(v) for k, v in self.scores.items()},
            "thresholds": {k: float(v) for k, v in self.thresholds.items()},
            "estimated_accuracy": (
                None if self.estimated_accuracy is None else float(self.estimated_accuracy)
            ),
            "reason": self.reason,
            "guarantee": dict(self.guarantee),
        }


def verdict(
    scores: Mapping[str, float],
    calibration: Calibration,
    *,
    signals: Sequence[str] | None = None,
    estimated_accuracy: float | None = None,
    min_accuracy: float | None = None,
) -> Verdict:
    """Compare ``scores`` with the calibrated thresholds (a signal fires when score > threshold).

    ``signals`` limits the check (default: every scored signal that has a threshold; a named
    signal that was not calibrated is an error, one that was not scored is skipped). When
    ``min_accuracy`` is given, an ``estimated_accuracy`` below it fires too (listed as
    ``estimated_accuracy``). Thresholds hold for windows of ``calibration.window_size`` rows.
    """
    calibrated = calibration.null_scores
    if signals is None:
        chosen = [s for s in scores if s in calibrated]
    else:
        unknown = [s for s in signals if s not in calibrated]
        if unknown:
            raise InputError(
                _SOURCE, "signals",
                f"not calibrated: {', '.join(unknown)} "
                f"(calibrated: {', '.join(calibrated) or 'none'})",
            )  # fmt: skip
        chosen = [s for s in signals if s in scores]
    order = {s: i for i, s in enumerate(SIGNALS)}
    chosen = sorted(dict.fromkeys(chosen), key=lambda s: order.get(s, len(order)))
    joint = calibration.joint(chosen)
    used = {s: float(joint.thresholds[s]) for s in chosen}
    checked = {s: float(scores[s]) for s in chosen}
    fired = [s for s in chosen if checked[s] > used[s]]
    parts = [f"{s} {checked[s]:.3g} > {used[s]:.3g}" for s in fired]
    low_accuracy = (
        estimated_accuracy is not None
        and min_accuracy is not None
        and estimated_accuracy < min_accuracy
    )
    if low_accuracy:
        fired.append(ACCURACY)
        parts.append(f"estimated accuracy {estimated_accuracy:.3f} < {min_accuracy:.3f}")
    held = joint.sentence()
    if fired:
        reason = f"Drift: {'; '.join(parts)} ({held})."
    else:
        accuracy = (
            f", estimated accuracy {estimated_accuracy:.3f}"
            if estimated_accuracy is not None
            else ""
        )
        reason = (
            f"No drift: {len(chosen)} signal(s) at or below thresholds for windows of "
            f"{calibration.window_size} rows ({held}){accuracy}."
        )
    return Verdict(
        drifted=bool(fired),
        fired=fired,
        scores=checked,
        thresholds=used,
        estimated_accuracy=estimated_accuracy,
        reason=reason,
        guarantee=joint.to_dict(),
    )
