"""Novelty scoring in chunks gives the dense computation's results in bounded memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from modelops.monitoring import novelty
from modelops.monitoring.novelty import (
    QUANTILE,
    nearest_similarity,
    novel_rows,
    novelty_threshold,
    threshold_sample,
)

# ----------------------------------------------------------- the dense code, as it was


def _dense_unit(x):
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def dense_nearest_similarity(rows, reference):
    return (_dense_unit(rows) @ _dense_unit(reference).T).max(axis=1)


def dense_novelty_threshold(reference, quantile=QUANTILE):
    ref = _dense_unit(reference)
    sims = ref @ ref.T
    np.fill_diagonal(sims, -np.inf)
    return float(np.quantile(sims.max(axis=1), quantile))


def dense_novel_rows(rows, reference, quantile=QUANTILE):
    threshold = dense_novelty_threshold(reference, quantile)
    return dense_nearest_similarity(rows, reference) < threshold, quantile


# ----------------------------------------------------------------------- data


def embeddings(rng, n, dim=24, *, duplicates=0, zeros=0, dtype=np.float32):
    """Clustered rows (so nearest neighbours are close), some exact duplicates of other
    rows and some zero vectors, shuffled; stored as the reference is (float32)."""
    centres = rng.standard_normal((6, dim))
    x = centres[rng.integers(0, 6, n)] + 0.4 * rng.standard_normal((n, dim))
    if duplicates:
        x[:duplicates] = x[rng.integers(duplicates, n, duplicates)]
    if zeros:
        x[duplicates : duplicates + zeros] = 0.0
    return x[rng.permutation(n)].astype(dtype)


CASES = [  # reference rows, window rows, duplicates, zero vectors, chunk
    (300, 50, 0, 0, 7),
    (257, 64, 20, 3, 16),
    (500, 120, 40, 5, 64),
    (129, 33, 10, 2, 1),
    (200, 10, 0, 4, 4096),  # one block: the chunk larger than everything
]


@pytest.mark.parametrize(("n_ref", "n_rows", "dups", "zeros", "chunk"), CASES)
def test_chunked_novelty_equals_the_dense_computation(n_ref, n_rows, dups, zeros, chunk):
    rng = np.random.default_rng(n_ref * 1000 + n_rows)
    reference = embeddings(rng, n_ref, duplicates=dups, zeros=zeros)
    window = np.concatenate(
        [
            embeddings(rng, n_rows - 4, duplicates=2, zeros=1),
            reference[:2],  # rows that are in the reference
            rng.standard_normal((2, reference.shape[1])).astype(np.float32) * 5,  # far away
        ]
    )

    sims = nearest_similarity(window, reference, chunk=chunk)
    np.testing.assert_allclose(
        sims, dense_nearest_similarity(window, reference), rtol=0, atol=1e-12
    )

    threshold = novelty_threshold(reference, chunk=chunk)
    assert threshold == pytest.approx(dense_novelty_threshold(reference), abs=1e-12)

    flagged, by_chance = novel_rows(window, reference, chunk=chunk)
    expected, expected_chance = dense_novel_rows(window, reference)
    assert flagged.dtype == bool
    np.testing.assert_array_equal(flagged, expected)
    assert by_chance == expected_chance
    assert 0 < flagged.sum() < len(window)  # the case tells flagged from unflagged rows


def test_a_known_threshold_is_used_as_given():
    rng = np.random.default_rng(4)
    reference = embeddings(rng, 150, duplicates=10)
    window = embeddings(rng, 60)
    threshold = novelty_threshold(reference, chunk=32)
    given, _ = novel_rows(window, reference, threshold=threshold, chunk=32)
    np.testing.assert_array_equal(given, dense_novel_rows(window, reference)[0])
    sims = dense_nearest_similarity(window, reference)
    median = float(np.median(sims))  # another threshold flags another share: it is used
    np.testing.assert_array_equal(novel_rows(window, reference, threshold=median)[0], sims < median)


def test_duplicates_count_as_each_others_nearest_row_and_zero_vectors_as_dissimilar():
    rng = np.random.default_rng(5)
    reference = embeddings(rng, 120, duplicates=30, zeros=2)
    picked = np.arange(len(reference))
    chunked = novelty._nearest(reference, reference, 16, exclude=picked)
    ref = _dense_unit(reference)
    dense = ref @ ref.T
    np.fill_diagonal(dense, -np.inf)
    np.testing.assert_allclose(chunked, dense.max(axis=1), rtol=0, atol=1e-12)
    zero = np.flatnonzero(~reference.any(axis=1))
    assert len(zero) == 2 and np.all(chunked[zero] == 0.0)
    assert np.sum(np.isclose(chunked, 1.0)) >= 30  # each duplicate finds its twin


def test_a_float64_reference_gives_the_same_results_as_float32_input_cast_up():
    rng = np.random.default_rng(9)
    reference = embeddings(rng, 200)
    window = embeddings(rng, 40)
    assert novelty_threshold(reference, chunk=32) == pytest.approx(
        dense_novelty_threshold(reference.astype(np.float64)), abs=1e-12
    )
    np.testing.assert_allclose(
        nearest_similarity(window.astype(np.float64), reference.astype(np.float64), chunk=32),
        dense_nearest_similarity(window, reference),
        rtol=0,
        atol=1e-12,
    )


def test_past_the_sample_size_the_threshold_is_the_sampled_rows_leave_one_out_quantile():
    rng = np.random.default_rng(11)
    reference = embeddings(rng, 400, duplicates=20, zeros=1)
    picked = threshold_sample(len(reference), 100)
    assert picked is not None and len(picked) == 100 and len(set(picked.tolist())) == 100
    np.testing.assert_array_equal(picked, threshold_sample(len(reference), 100))  # fixed seed
    ref = _dense_unit(reference)
    dense = ref @ ref.T
    np.fill_diagonal(dense, -np.inf)  # each sampled row against all the others
    expected = float(np.quantile(dense.max(axis=1)[picked], QUANTILE))
    assert novelty_threshold(reference, sample=100, chunk=64) == pytest.approx(expected, abs=1e-12)
    assert threshold_sample(len(reference), 400) is None  # up to the sample size: every row


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_a_one_row_reference_flags_nothing_as_the_dense_code_did():
    reference = np.ones((1, 8), dtype=np.float32)
    window = np.eye(8, dtype=np.float32)
    assert novelty_threshold(reference) == -np.inf  # the dense code's was NaN, with a warning
    np.testing.assert_array_equal(dense_novel_rows(window, reference)[0], np.zeros(8, bool))
    np.testing.assert_array_equal(novel_rows(window, reference)[0], np.zeros(8, dtype=bool))


@pytest.mark.parametrize(
    ("rows", "reference", "kwargs", "message"),
    [
        (np.ones((3, 4)), np.ones((0, 4)), {}, "the reference has no rows"),
        (np.ones((3, 5)), np.ones((6, 4)), {}, "rows have 5 dimensions, the reference has 4"),
        (np.ones(4), np.ones((6, 4)), {}, "rows must be a 2-d array"),
        (np.ones((3, 4)), np.ones((6, 4)), {"chunk": 0}, "chunk must be at least 1"),
        (np.ones((3, 4)), np.ones((6, 4)), {"sample": 0}, "sample must be at least 1"),
    ],
)
def test_bad_shapes_and_settings_raise_a_clear_error(rows, reference, kwargs, message):
    with pytest.raises(ValueError, match=message):
        novel_rows(rows, reference, **kwargs)


def test_an_empty_window_flags_no_rows():
    reference = embeddings(np.random.default_rng(2), 50)
    flagged, _ = novel_rows(np.zeros((0, reference.shape[1]), np.float32), reference)
    assert flagged.shape == (0,)


def test_peak_memory_is_bounded_by_the_chunk_not_the_reference_size():
    """The dense code held rows x reference float64 similarities (and a float64 copy of the
    reference); in chunks the working memory is a few blocks, whatever the reference."""
    rng = np.random.default_rng(3)
    reference = rng.standard_normal((6000, 16)).astype(np.float32)
    window = rng.standard_normal((500, 16)).astype(np.float32)
    chunk = 256
    tracemalloc.start()
    try:
        novel_rows(window, reference, chunk=chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    block = chunk * chunk * 8  # one block of similarities
    dense_threshold = len(reference) ** 2 * 8  # what the dense threshold allocated
    # a few blocks plus per-row vectors (the running maxima of 6,000 rows, 48 KB each)
    assert peak < 6 * block + 8 * len(reference) * 8
    assert peak < dense_threshold / 20
