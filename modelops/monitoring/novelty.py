"""Rows unlike any reference row: the part of a window a confidence-based estimate misjudges.

A model is often confidently wrong on an intent it never saw, so the label-free estimate
(``modelops.monitoring.estimate``) counts those rows as right. :func:`novel_rows` flags the
rows whose nearest reference row (cosine similarity of the frozen base's embeddings) is
farther than for all but ``quantile`` of the reference rows themselves (each against the
others), so about ``quantile`` of clean rows are flagged by chance.
``modelops.monitoring.impact.assess`` takes the flagged share beyond that as rows the model
gets wrong.
"""

from __future__ import annotations

import numpy as np

QUANTILE = 0.02


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def nearest_similarity(rows: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each row's cosine similarity to its nearest reference row."""
    return (_unit(rows) @ _unit(reference).T).max(axis=1)


def novelty_threshold(reference: np.ndarray, quantile: float = QUANTILE) -> float:
    """The ``quantile`` of the reference rows' similarity to their nearest other row."""
    ref = _unit(reference)
    sims = ref @ ref.T
    np.fill_diagonal(sims, -np.inf)
    return float(np.quantile(sims.max(axis=1), quantile))


def novel_rows(
    rows: np.ndarray, reference: np.ndarray, quantile: float = QUANTILE
) -> tuple[np.ndarray, float]:
    """Which rows are unlike any reference row, and the share expected by chance."""
    threshold = novelty_threshold(reference, quantile)
    return nearest_similarity(rows, reference) < threshold, quantile
