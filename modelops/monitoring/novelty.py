"""Rows unlike any reference row: the part of a window a confidence-based estimate misjudges.

A model is often confidently wrong on an intent it never saw, so the label-free estimate
(``modelops.monitoring.estimate``) counts those rows as right. :func:`novel_rows` flags the
rows whose nearest reference row (cosine similarity of the frozen base's embeddings) is
farther than for all but ``quantile`` of the reference rows themselves (each against the
others), so about ``quantile`` of clean rows are flagged by chance.
``modelops.monitoring.impact.assess`` takes the flagged share beyond that as rows the model
gets wrong.

Memory stays bounded by ``chunk``: similarities are computed ``chunk`` rows by ``chunk``
reference rows at a time (float64, as the reference is normalised block by block from its
stored float32), keeping only each row's running maximum, never the rows-by-reference
matrix. The reference itself is read as it is stored (float32), without a float64 copy.
The leave-one-out threshold compares every reference row with all the others while the
reference has at most ``sample`` rows (today's references: the same values as the dense
computation); past that, the quantile is taken over a fixed random sample of ``sample``
reference rows, each still against the whole reference (docs/concepts.md, "Novelty scoring
in bounded memory", gives the sampling error). The threshold depends on the reference alone:
``modelops.monitoring.reference`` computes it once, when the adapter's monitoring bundle is
written, and the drift check of each window passes it in.
"""

from __future__ import annotations

import numpy as np

QUANTILE = 0.02
CHUNK = 2048  # rows per block: a block of similarities is CHUNK x CHUNK float64 (32 MiB)
SAMPLE = 10_000  # reference rows whose leave-one-out similarity sets the threshold
SEED = 0  # the sample is the same for the same reference size: reproducible thresholds


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def _check(name: str, x: np.ndarray, dim: int | None = None) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"novelty: {name} must be a 2-d array of embeddings, got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"novelty: {name} have {x.shape[1]} dimensions, the reference has {dim}")
    return x


def _nearest(
    rows: np.ndarray,
    reference: np.ndarray,
    chunk: int,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """Each row's largest cosine similarity to a reference row, ``chunk`` x ``chunk`` at a
    time; ``exclude[i]`` is a reference index row ``i`` is not compared with (itself)."""
    if chunk < 1:
        raise ValueError(f"novelty: chunk must be at least 1, got {chunk}")
    best = np.full(len(rows), -np.inf)
    for r0 in range(0, len(rows), chunk):
        block = _unit(rows[r0 : r0 + chunk])
        own = None if exclude is None else exclude[r0 : r0 + chunk]
        top = best[r0 : r0 + chunk]
        for c0 in range(0, len(reference), chunk):
            sims = block @ _unit(reference[c0 : c0 + chunk]).T
            if own is not None:
                hit = np.flatnonzero((own >= c0) & (own < c0 + sims.shape[1]))
                sims[hit, own[hit] - c0] = -np.inf
            np.maximum(top, sims.max(axis=1), out=top)
    return best


def nearest_similarity(rows: np.ndarray, reference: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """Each row's cosine similarity to its nearest reference row."""
    reference = _check("reference", reference)
    if len(reference) == 0:
        raise ValueError("novelty: the reference has no rows")
    return _nearest(_check("rows", rows, reference.shape[1]), reference, chunk)


def threshold_sample(size: int, sample: int = SAMPLE) -> np.ndarray | None:
    """The reference rows the threshold is taken over: None (all of them) up to ``sample``
    rows, else ``sample`` distinct rows drawn with a fixed seed, in index order."""
    if sample < 1:
        raise ValueError(f"novelty: sample must be at least 1, got {sample}")
    if size <= sample:
        return None
    return np.sort(np.random.default_rng(SEED).choice(size, sample, replace=False))


def novelty_threshold(
    reference: np.ndarray,
    quantile: float = QUANTILE,
    *,
    chunk: int = CHUNK,
    sample: int = SAMPLE,
) -> float:
    """The ``quantile`` of the reference rows' similarity to their nearest other row
    (over a fixed sample of ``sample`` rows, each against all others, past that size)."""
    reference = _check("reference", reference)
    if len(reference) == 0:
        raise ValueError("novelty: the reference has no rows")
    if len(reference) == 1:  # no other row to be near: nothing is novel (as before, no NaN)
        return -np.inf
    picked = threshold_sample(len(reference), sample)
    if picked is None:
        picked = np.arange(len(reference))
        rows = reference
    else:
        rows = reference[picked]
    sims = _nearest(rows, reference, chunk, exclude=picked)
    return float(np.quantile(sims, quantile))


def novel_rows(
    rows: np.ndarray,
    reference: np.ndarray,
    quantile: float = QUANTILE,
    *,
    threshold: float | None = None,
    chunk: int = CHUNK,
    sample: int = SAMPLE,
) -> tuple[np.ndarray, float]:
    """Which rows are unlike any reference row, and the share expected by chance.

    ``threshold``: the reference's :func:`novelty_threshold` at ``quantile`` when already
    known (the monitoring bundle stores it at training); computed here when None."""
    if threshold is None:
        threshold = novelty_threshold(reference, quantile, chunk=chunk, sample=sample)
    return nearest_similarity(rows, reference, chunk) < threshold, quantile
