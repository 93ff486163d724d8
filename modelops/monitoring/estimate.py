"""Label-free accuracy estimate from the model's confidence (in the spirit of NannyML's CBPE).

A :class:`ConfidenceCalibrator` maps the top-class probability to the probability that the
prediction is right, learned on the champion's validation split with isotonic regression. On
a production window without labels, the expected accuracy is the mean of those calibrated
probabilities. The estimate follows accuracy when the *confidence* distribution shifts
(harder inputs get lower confidence); it cannot see drift that leaves confidence unchanged
(confidently wrong on a new intent), which the drift signals cover.

The fitted calibrator is stored as the isotonic step function's knots (plain JSON lists) and
predicts by linear interpolation between them, clipped at the ends, exactly as scikit-learn's
``IsotonicRegression(out_of_bounds="clip").predict`` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from modelops.config.errors import InputError

_SOURCE = "performance_estimate"


def _confidence_array(confidence: Any, field: str) -> np.ndarray:
    values = np.asarray(confidence, dtype=float)
    if values.ndim != 1:
        raise InputError(_SOURCE, field, f"must be one-dimensional, got shape {values.shape}")
    bad = np.flatnonzero(~np.isfinite(values) | (values < 0) | (values > 1))
    if bad.size:
        raise InputError(
            _SOURCE,
            f"{field}[{bad[0]}]",
            f"must be a probability in [0, 1], got {values[bad[0]]!r}",
        )
    return values


class ConfidenceCalibrator:
    """Isotonic map from top-class confidence to the probability of a correct prediction."""

    def __init__(self) -> None:
        self.x_thresholds: np.ndarray | None = None
        self.y_thresholds: np.ndarray | None = None
        self.n_fitted: int = 0
        self.fitted_accuracy: float | None = None

    def fit(self, confidence: np.ndarray, correct: np.ndarray) -> ConfidenceCalibrator:
        """Fit on validation rows: ``confidence`` in [0, 1], ``correct`` booleans (or 0/1)."""
        from sklearn.isotonic import IsotonicRegression

        x = _confidence_array(confidence, "confidence")
        y = np.asarray(correct)
        if y.shape != x.shape:
            raise InputError(
                _SOURCE, "correct", f"must have shape {x.shape} like confidence, got {y.shape}"
            )
        if x.size < 2:
            raise InputError(_SOURCE, "confidence", f"needs at least 2 rows, got {x.size}")
        if not np.isin(y, (0, 1)).all():
            raise InputError(_SOURCE, "correct", "must hold booleans or 0/1 only")
        y = y.astype(float)
        model = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
        model.fit(x, y)
        self.x_thresholds = np.asarray(model.X_thresholds_, dtype=float)
        self.y_thresholds = np.asarray(model.y_thresholds_, dtype=float)
        self.n_fitted = int(x.size)
        self.fitted_accuracy = float(y.mean())
        return self

    def predict(self, confidence: np.ndarray) -> np.ndarray:
        """Calibrated probability that each prediction is correct."""
        if self.x_thresholds is None or self.y_thresholds is None:
            raise InputError(_SOURCE, "calibrator", "is not fitted")
        x = _confidence_array(confidence, "confidence")
        return np.interp(x, self.x_thresholds, self.y_thresholds)

    def to_dict(self) -> dict[str, Any]:
        """The knots of the fitted step function as plain lists (JSON-ready)."""
        if self.x_thresholds is None or self.y_thresholds is None:
            raise InputError(_SOURCE, "calibrator", "is not fitted")
        return {
            "method": "isotonic",
            "x_thresholds": [float(v) for v in self.x_thresholds],
            "y_thresholds": [float(v) for v in self.y_thresholds],
            "n_fitted": self.n_fitted,
            "fitted_accuracy": self.fitted_accuracy,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ConfidenceCalibrator:
        """Inverse of :meth:`to_dict`."""
        try:
            x = np.asarray(d["x_thresholds"], dtype=float)
            y = np.asarray(d["y_thresholds"], dtype=float)
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(_SOURCE, "calibrator", f"is not a stored calibrator: {exc}") from exc
        if x.ndim != 1 or x.shape != y.shape or x.size == 0:
            raise InputError(
                _SOURCE,
                "calibrator",
                f"knots must be two equal, non-empty lists: {x.shape} {y.shape}",
            )
        if np.any(np.diff(x) < 0) or np.any(np.diff(y) < 0):
            raise InputError(_SOURCE, "calibrator", "knots must be non-decreasing")
        calibrator = cls()
        calibrator.x_thresholds, calibrator.y_thresholds = x, y
        calibrator.n_fitted = int(d.get("n_fitted", 0))
        accuracy = d.get("fitted_accuracy")
        calibrator.fitted_accuracy = None if accuracy is None else float(accuracy)
        return calibrator


def estimate_accuracy(calibrator: ConfidenceCalibrator, confidence: np.ndarray) -> float:
    """Expected accuracy of a window: the mean calibrated probability of being correct."""
    probabilities = calibrator.predict(confidence)
    if probabilities.size == 0:
        raise InputError(_SOURCE, "confidence", "is empty")
    return float(probabilities.mean())
