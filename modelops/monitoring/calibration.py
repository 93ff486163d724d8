"""Drift thresholds calibrated to the window size, the false-alarm rate and a confidence.

:func:`calibrate` scores many null windows (windows that did not drift, resampled from
held-out reference-like data) against the reference, keeps each signal's null scores, and
sets thresholds with ``modelops.monitoring.guarantee.joint_thresholds``: jointly over the
chosen signals, so that the false-alarm rate holds for the whole verdict, with a
finite-sample bound at the stated confidence. ``modelops.monitoring.verdict`` recomputes the
joint thresholds for the signals a report actually checks (the null scores are stored).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from modelops.config.errors import InputError
from modelops.config.progress import Emit
from modelops.monitoring.evidently_scores import frame_signal_scores, signal_scores
from modelops.monitoring.guarantee import JointThresholds, joint_thresholds, windows_needed
from modelops.monitoring.signals import Projection, Window, column_frames, fit_projection

_SOURCE = "drift"
_DEFAULT_CONFIDENCE = 0.9


@dataclass
class Calibration:
    """Null scores of windows of ``window_size`` rows against one reference, and thresholds
    for ``signals`` at ``false_alarm_rate`` (of the whole verdict) with ``confidence``."""

    window_size: int
    false_alarm_rate: float
    n_bootstrap: int
    thresholds: dict[str, float]
    null_scores: dict[str, list[float]]
    reference_rows: int = 0
    holdout_rows: int = 0
    confidence: float = _DEFAULT_CONFIDENCE
    signals: list[str] | None = None
    """The signals the stored thresholds are for (None: every calibrated one)."""
    guarantee: dict[str, Any] = field(default_factory=dict)

    def joint(self, signals: Sequence[str] | None = None) -> JointThresholds:
        """Thresholds for ``signals`` (default: the calibrated ones) and their guarantee."""
        if signals is None:
            signals = self.null_scores if self.signals is None else self.signals
        chosen = list(signals)
        result = joint_thresholds(
            self.null_scores, chosen, rate=self.false_alarm_rate, confidence=self.confidence
        )
        if self.holdout_rows and self.holdout_rows < 5 * self.window_size:
            result.notes.append(
                f"the holdout has {self.holdout_rows} rows, fewer than 5 windows of "
                f"{self.window_size}: null windows re-use the same rows, and the rate holds "
                "only as far as they stand for production data"
            )
        return result

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return {
            "window_size": int(self.window_size),
            "false_alarm_rate": float(self.false_alarm_rate),
            "n_bootstrap": int(self.n_bootstrap),
            "thresholds": {k: float(v) for k, v in self.thresholds.items()},
            "null_scores": {k: [float(x) for x in v] for k, v in self.null_scores.items()},
            "reference_rows": int(self.reference_rows),
            "holdout_rows": int(self.holdout_rows),
            "confidence": float(self.confidence),
            "signals": None if self.signals is None else list(self.signals),
            "guarantee": dict(self.guarantee),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Calibration:
        """Inverse of :meth:`to_dict` (also reads calibrations stored before the joint rule:
        their thresholds are recomputed from the null scores when a verdict asks)."""
        try:
            return cls(
                window_size=int(d["window_size"]),
                false_alarm_rate=float(d["false_alarm_rate"]),
                n_bootstrap=int(d["n_bootstrap"]),
                thresholds={str(k): float(v) for k, v in d["thresholds"].items()},
                null_scores={str(k): [float(x) for x in v] for k, v in d["null_scores"].items()},
                reference_rows=int(d.get("reference_rows", 0)),
                holdout_rows=int(d.get("holdout_rows", 0)),
                confidence=float(d.get("confidence", _DEFAULT_CONFIDENCE)),
                signals=(None if d.get("signals") is None else [str(s) for s in d["signals"]]),
                guarantee=dict(d.get("guarantee", {})),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(_SOURCE, "calibration", f"is not a stored calibration: {exc}") from exc

    def at_rate(self, false_alarm_rate: float) -> Calibration:
        """The same null scores with thresholds at another false-alarm rate."""
        _check_rate(false_alarm_rate)
        moved = replace(self, false_alarm_rate=false_alarm_rate)
        joint = moved.joint()
        return replace(moved, thresholds=joint.thresholds, guarantee=joint.to_dict())


def _check_rate(false_alarm_rate: float) -> None:
    if not 0.0 < false_alarm_rate < 0.5:
        raise InputError(
            _SOURCE, "false_alarm_rate", f"must be in (0, 0.5), got {false_alarm_rate!r}"
        )


def null_window_indices(
    rng: np.random.Generator, holdout_rows: int, window_size: int
) -> np.ndarray:
    """Rows of one null window: distinct holdout rows, drawn with Dirichlet weights (a
    Bayesian bootstrap of the holdout as a stand-in for the population, then a window
    without replacement from it).

    Distinct rows keep each window like a fresh sample: duplicated rows (a plain bootstrap)
    inflate the distances, and the text domain classifier then memorizes rows present on
    both sides (its null AUC sat at 0.61 where fresh clean Banking77 windows scored 0.51).
    The weights add the holdout's own sampling spread, which plain subsampling leaves out:
    when the holdout is not much larger than a window, subsamples share most rows and the
    null is too narrow (4 of 100 clean Banking77 windows fired; benchmarks/RESULTS.md)."""
    weights = rng.dirichlet(np.ones(holdout_rows))
    return rng.choice(holdout_rows, size=window_size, replace=False, p=weights)


def calibrate(
    reference: Window,
    holdout: Window,
    *,
    window_size: int,
    false_alarm_rate: float = 0.01,
    n_bootstrap: int | None = None,
    confidence: float = _DEFAULT_CONFIDENCE,
    signals: Sequence[str] | None = None,
    seed: int = 0,
    label_rows: int | None = None,
    vocabulary: set[str] | frozenset[str] | None = None,
    pca: Projection | None = None,
    engine: str = "stattest",
    emit: Emit | None = None,
) -> Calibration:
    """Null scores from resampled no-drift windows, and joint thresholds for ``signals``.

    Draws ``n_bootstrap`` windows of ``window_size`` rows from ``holdout`` (reference-like
    data the model did not train on and that is not in ``reference``) with
    :func:`null_window_indices`, and scores each against ``reference`` with
    :func:`signal_scores`. ``n_bootstrap=None`` draws as many as the rate needs at the
    confidence (``windows_needed``: 1,151 at 0.002 and 0.9). The thresholds are
    ``joint_thresholds`` over ``signals`` (default: every scored signal). ``label_rows`` keeps
    labels on only that many rows of each window, to match how much feedback production
    windows carry (default: all rows). Without ``pca`` one projection is fitted on
    ``reference``; pass the same ``vocabulary`` and ``pca`` when scoring production windows.
    Cost: ``n_bootstrap`` score computations against the whole reference (no HTML).
    """
    _check_rate(false_alarm_rate)
    n = windows_needed(false_alarm_rate, confidence) if n_bootstrap is None else n_bootstrap
    if n < 2:
        raise InputError(_SOURCE, "n_bootstrap", f"must be >= 2, got {n}")
    if not 1 <= window_size <= len(holdout):
        raise InputError(
            _SOURCE, "window_size",
            f"must be between 1 and the holdout's {len(holdout)} rows, got {window_size}",
        )  # fmt: skip
    if label_rows is not None and not 0 <= label_rows <= window_size:
        raise InputError(_SOURCE, "label_rows", f"must be in [0, {window_size}], got {label_rows}")
    if pca is None and reference.embeddings is not None and holdout.embeddings is not None:
        pca = fit_projection(reference.embeddings)
    rng = np.random.default_rng(seed)
    null: dict[str, list[float]] = {}
    # The stattest engine scores windows of rows of the holdout's columns, built once.
    frames = column_frames(reference, holdout, vocabulary, pca) if engine == "stattest" else None
    if frames is not None and label_rows == 0:  # no feedback: no label signal, as in production
        frames[2].pop("label", None)
    started = last = time.monotonic()
    for done in range(1, n + 1):
        rows = null_window_indices(rng, len(holdout), window_size)
        keep = None
        if label_rows is not None and holdout.labels is not None:
            keep = rng.choice(window_size, size=label_rows, replace=False)
        if frames is not None:
            ref_frame, pool, kinds = frames
            cur = pool.iloc[rows].reset_index(drop=True)
            if keep is not None and "label" in cur:
                mask = np.zeros(window_size, dtype=bool)
                mask[keep] = True
                cur["label"] = cur["label"].where(mask, None)
            scores = frame_signal_scores(ref_frame, cur, kinds)
        else:
            window = holdout.take(rows)
            if keep is not None and window.labels is not None:
                kept = set(keep.tolist())
                labels = [label if i in kept else None for i, label in enumerate(window.labels)]
                window = replace(window, labels=labels)
            scores = signal_scores(reference, window, vocabulary=vocabulary, pca=pca, engine=engine)
        for signal, score in scores.items():
            null.setdefault(signal, []).append(score)
        now = time.monotonic()
        if emit is not None and (now - last >= 30 or done == n):
            last = now
            left = (now - started) / done * (n - done)
            emit(f"calibration: {done}/{n} null windows scored, about {left:.0f} s left")
    complete = {signal: values for signal, values in null.items() if len(values) == n}
    chosen = [s for s in (signals if signals is not None else complete) if s in complete]
    calibration = Calibration(
        window_size=window_size,
        false_alarm_rate=false_alarm_rate,
        n_bootstrap=n,
        thresholds={},
        null_scores=complete,
        reference_rows=len(reference),
        holdout_rows=len(holdout),
        confidence=confidence,
        signals=chosen,
    )
    joint = calibration.joint()
    return replace(calibration, thresholds=joint.thresholds, guarantee=joint.to_dict())
