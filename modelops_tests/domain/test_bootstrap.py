"""The paired bootstrap of modelops.domain.bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

from modelops.domain.bootstrap import paired_bootstrap


def test_identical_predictions_have_a_zero_interval() -> None:
    right = np.random.default_rng(1).random(500) < 0.9
    boot = paired_bootstrap(right, right)
    assert boot.observed == boot.low == boot.high == boot.lower_bound == 0.0
    assert boot.a_only == boot.b_only == 0 and boot.n == 500


def test_clearly_better_has_a_positive_lower_bound() -> None:
    rng = np.random.default_rng(2)
    b = rng.random(1000) < 0.80
    a = b | (rng.random(1000) < 0.5)  # A also right on about half of B's errors
    boot = paired_bootstrap(a, b, confidence=0.95)
    assert boot.observed == pytest.approx(a.mean() - b.mean())
    assert 0 < boot.low < boot.lower_bound < boot.observed < boot.high
    assert boot.b_only == 0 and boot.a_only == int((a & ~b).sum())


def test_a_small_gain_on_few_rows_is_within_the_noise() -> None:
    b = np.arange(100) < 90
    a = np.arange(100) < 92
    boot = paired_bootstrap(a, b)
    assert boot.observed == pytest.approx(0.02)
    assert boot.lower_bound <= 0 < boot.high


def test_reproducible_with_a_seed_and_varies_without_it() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.random(300) < 0.85, rng.random(300) < 0.8
    assert paired_bootstrap(a, b, seed=7) == paired_bootstrap(a, b, seed=7)
    assert paired_bootstrap(a, b, seed=7).low != paired_bootstrap(a, b, seed=8).low


def test_fractional_correctness_of_several_runs() -> None:
    a = np.array([1.0, 2 / 3, 1 / 3, 1.0])
    b = np.array([1.0, 0.0, 1.0, 0.0])
    assert paired_bootstrap(a, b).observed == pytest.approx((0 + 2 / 3 - 2 / 3 + 1) / 4)


@pytest.mark.parametrize(
    ("a", "b", "kwargs", "match"),
    [
        ([True], [True, False], {}, "one value per row"),
        ([], [], {}, "no rows"),
        ([True], [False], {"confidence": 1.0}, "confidence"),
    ],
)
def test_bad_input_is_refused(a, b, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        paired_bootstrap(a, b, **kwargs)
