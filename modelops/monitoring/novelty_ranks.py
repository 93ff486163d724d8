"""The novelty test on out-of-scope *scores*, not flags: a conformal test martingale
(Vovk, Nouretdinov & Gammerman, "Testing exchangeability on-line", ICML 2003; Vovk et al.,
"Retrain or not retrain: conformal test martingales for change-point detection", 2021).

Why not the flags: a flag at one threshold throws away how far past it a row is, and its
null rate is known only up to the calibration's sampling error, so a flag-count test must
bet against an *upper bound* of the in-scope flag rate. On Banking77 that bound (7.3 % for
a stated 5 %) was above what a 5 % share of unknown intents adds (benchmarks/RESULTS.md,
issue 24): the test could not see it.

The test here needs no bound. The adapter's calibration rows (held-out in-scope rows) and
the production rows that follow, in order, form one sequence; each production row's
smoothed conformal p-value is its rank among every score before it (the calibration rows
and the earlier production rows)::

    p = (#{earlier scores > s} + U * (#{earlier scores = s} + 1)) / (earlier + 1)

with ``U`` uniform on [0, 1]. If the whole sequence is exchangeable (production traffic
drawn like the calibration rows), these p-values are independent and uniform, exactly,
whatever the score's distribution and however few calibration rows there are (Vovk et al.
2003, Theorem 1); bets on them (``betting.p_value_update``) make a test martingale.
Unknown requests score high, so their p-values are small, and the bets win.

Scores are counted in bins (:func:`rank_reference`) so the state stays small (a count per
bin, stored as JSON): the binned score is itself a score function, ties within a bin are
broken by ``U``, and the guarantee holds for it exactly. The bin edges are the scores of
held-out rows *apart* from the calibration rows (the rows the flag rate is measured on),
so the score function does not depend on the sequence. ``U`` comes from the row id
(:func:`row_uniforms`), so a check run twice gives the same p-values.
"""

from __future__ import annotations

import hashlib

import numpy as np


def rank_reference(edge_scores: np.ndarray, calibration_scores: np.ndarray):
    """The bin edges (the sorted distinct ``edge_scores``) and the calibration rows' count
    per bin (``len(edges) + 1`` bins; bin ``b`` holds scores in ``[edges[b-1], edges[b])``)."""
    edges = np.unique(np.asarray(edge_scores, dtype=np.float64))
    edges = edges[np.isfinite(edges)]
    if edges.size == 0:
        raise ValueError("novelty ranks: no finite scores to set bin edges from")
    counts = np.bincount(bins_of(edges, calibration_scores), minlength=edges.size + 1)
    return edges, counts.astype(np.int64)


def bins_of(edges: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Each score's bin (higher bin: more out of scope)."""
    return np.searchsorted(edges, np.asarray(scores, dtype=np.float64), side="right")


def fingerprint(edges: np.ndarray, counts: np.ndarray) -> str:
    """A short hash of the reference: evidence restarts when it changes."""
    digest = hashlib.sha256(np.asarray(edges, dtype=np.float64).tobytes())
    digest.update(np.asarray(counts, dtype=np.int64).tobytes())
    return digest.hexdigest()[:16]


def row_uniforms(ids: np.ndarray, salt: int) -> np.ndarray:
    """A uniform number in [0, 1) per row id (splitmix64 of id and ``salt``): the p-values'
    tie-breaking, the same every time a row is checked."""
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps modulo 2**64, as intended
        x = np.asarray(ids, dtype=np.uint64) + np.uint64(salt) * np.uint64(0x9E3779B97F4A7C15)
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def sequential_p_values(
    counts: np.ndarray, bins: np.ndarray, uniforms: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The smoothed conformal p-value of each row in order, each counted in before the
    next; returns the p-values and the counts after the last row."""
    counts = np.array(counts, dtype=np.int64)
    bins = np.asarray(bins, dtype=np.int64)
    if bins.size and (bins.min() < 0 or bins.max() >= counts.size):
        raise ValueError(f"novelty ranks: a bin outside 0..{counts.size - 1}")
    above = np.cumsum(counts[::-1])[::-1]  # above[b]: rows in bins >= b
    total = int(counts.sum())
    out = np.empty(bins.size, dtype=np.float64)
    for i, (b, u) in enumerate(zip(bins.tolist(), np.asarray(uniforms).tolist(), strict=True)):
        same = int(counts[b])
        greater = int(above[b]) - same
        out[i] = (greater + u * (same + 1)) / (total + 1)
        counts[b] += 1
        above[: b + 1] += 1
        total += 1
    return out, counts
