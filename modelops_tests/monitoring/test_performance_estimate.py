"""Label-free accuracy estimate: isotonic confidence calibration, estimates on seeded windows."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression

from modelops.config.errors import InputError
from modelops.monitoring.estimate import ConfidenceCalibrator, estimate_accuracy


def _rows(n: int, a: float, b: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """An over-confident model: P(correct | confidence c) = c ** 2, confidence ~ Beta(a, b)."""
    rng = np.random.default_rng(seed)
    confidence = rng.beta(a, b, size=n)
    correct = rng.random(n) < confidence**2
    return confidence, correct


@pytest.fixture(scope="module")
def calibrator() -> ConfidenceCalibrator:
    confidence, correct = _rows(4000, 6.0, 2.0, seed=0)
    return ConfidenceCalibrator().fit(confidence, correct)


def test_estimate_tracks_accuracy_on_a_window_like_validation(calibrator):
    confidence, correct = _rows(2000, 6.0, 2.0, seed=1)
    estimate = estimate_accuracy(calibrator, confidence)
    assert estimate == pytest.approx(correct.mean(), abs=0.03)
    # the raw confidence would overstate it: the model is over-confident
    assert confidence.mean() - correct.mean() > 0.1


def test_estimate_follows_a_confidence_shift(calibrator):
    confidence, correct = _rows(2000, 2.0, 2.0, seed=2)  # harder inputs, lower confidence
    estimate = estimate_accuracy(calibrator, confidence)
    assert calibrator.fitted_accuracy - correct.mean() > 0.2  # the window really differs
    assert estimate == pytest.approx(correct.mean(), abs=0.05)


def test_predictions_are_monotone_probabilities_like_sklearn(calibrator):
    grid = np.linspace(0, 1, 501)
    predicted = calibrator.predict(grid)
    assert np.all(np.diff(predicted) >= 0)
    assert predicted.min() >= 0 and predicted.max() <= 1
    confidence, correct = _rows(4000, 6.0, 2.0, seed=0)
    reference = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(confidence, correct)
    np.testing.assert_allclose(predicted, reference.predict(grid), atol=1e-12)


def test_round_trip_through_json(calibrator):
    stored = json.loads(json.dumps(calibrator.to_dict()))
    restored = ConfidenceCalibrator.from_dict(stored)
    grid = np.linspace(0, 1, 101)
    np.testing.assert_array_equal(restored.predict(grid), calibrator.predict(grid))
    assert restored.fitted_accuracy == calibrator.fitted_accuracy
    assert restored.n_fitted == 4000


def test_input_errors(calibrator):
    with pytest.raises(InputError, match="not fitted"):
        ConfidenceCalibrator().predict(np.array([0.5]))
    with pytest.raises(InputError, match="correct"):
        ConfidenceCalibrator().fit(np.array([0.5, 0.6]), np.array([True]))
    with pytest.raises(InputError, match="correct"):
        ConfidenceCalibrator().fit(np.array([0.5, 0.6]), np.array([0.2, 1.0]))
    with pytest.raises(InputError, match=r"confidence\[1\]"):
        calibrator.predict(np.array([0.5, np.nan]))
    with pytest.raises(InputError, match="confidence"):
        estimate_accuracy(calibrator, np.array([]))
    with pytest.raises(InputError, match="knots"):
        ConfidenceCalibrator.from_dict({"x_thresholds": [0.1, 0.2], "y_thresholds": [0.5]})
