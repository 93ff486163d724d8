"""Out-of-scope score functions (``modelops.monitoring.out_of_scope``): cosine kNN on the
adapter's features, and ``knn_msp``, that plus the model's own doubt."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

BLOCK_VALUES = 1 << 22
"""Similarities computed at once (rows x reference rows, float32: 16 MiB)."""


def unit(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32; zero rows stay zero)."""
    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"out_of_scope: features must be a 2-d array, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def kth_similarity(rows: np.ndarray, reference: np.ndarray, k: int) -> np.ndarray:
    """Each row's cosine similarity to its ``k``-th most similar reference row (both unit
    rows), in blocks of at most :data:`BLOCK_VALUES` similarities."""
    if len(reference) == 0:
        raise ValueError("out_of_scope: the reference has no rows")
    if rows.shape[1] != reference.shape[1]:
        raise ValueError(
            f"out_of_scope: features have {rows.shape[1]} dimensions, "
            f"the reference has {reference.shape[1]}"
        )
    k = min(k, len(reference))
    step = max(1, BLOCK_VALUES // len(reference))
    out = np.empty(len(rows), dtype=np.float64)
    for start in range(0, len(rows), step):
        sims = rows[start : start + step] @ reference.T
        out[start : start + step] = -np.partition(-sims, k - 1, axis=1)[:, k - 1]
    return out


def knn_cosine(features: np.ndarray, reference: np.ndarray, k: int) -> np.ndarray:
    """``1 - `` the cosine similarity to the ``k``-th nearest reference row."""
    return 1.0 - kth_similarity(unit(features), reference, k)


def knn_msp(
    features: np.ndarray, reference: np.ndarray, k: int, confidence: np.ndarray, scale: dict
) -> np.ndarray:
    """The kNN score plus ``1 - confidence``, each standardised by ``scale``'s means and
    spreads (``knn_mean``, ``knn_std``, ``msp_mean``, ``msp_std``)."""
    knn = knn_cosine(features, reference, k)
    msp = 1.0 - np.asarray(confidence, dtype=np.float64)
    return (knn - scale["knn_mean"]) / scale["knn_std"] + (msp - scale["msp_mean"]) / scale[
        "msp_std"
    ]


SCORES: dict[str, Callable[..., np.ndarray]] = {
    "knn_cosine": lambda features, reference, k, confidence, scale: knn_cosine(
        features, reference, k
    ),
    "knn_msp": knn_msp,
}
"""Score functions by name: ``fn(features, unit reference, k, confidence, scale) -> scores``
(higher: more out of scope). A model stores the name it was fitted with."""
NEEDS_CONFIDENCE = {"knn_msp"}
DEFAULT_METHOD = "knn_msp"
