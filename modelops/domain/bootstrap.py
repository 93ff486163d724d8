"""Paired bootstrap over test rows: is model A's accuracy above model B's by a margin, with
stated confidence, or is the difference within the noise of the rows it was measured on?

Both models are scored on the same rows, so the rows are resampled together: each resample
draws n row indices with replacement and takes mean(a_correct - b_correct) on them. The
percentile interval of those means bounds the accuracy margin. Seeded, so the same inputs
give the same interval.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

DEFAULT_RESAMPLES = 2000
_CHUNK = 250  # resamples drawn at once (n x 250 indices)


@dataclass(frozen=True)
class PairedBootstrap:
    """The observed margin (mean of a_correct - b_correct) and its bootstrap bounds.

    ``low``/``high`` bound a two-sided interval at ``confidence``; ``lower_bound`` is the
    one-sided lower bound at ``confidence`` (the (1 - confidence) quantile), the number a
    "better by at least" claim rests on."""

    n: int
    observed: float
    low: float
    high: float
    lower_bound: float
    confidence: float
    resamples: int
    seed: int
    a_only: int
    """Rows A gets right and B gets wrong."""
    b_only: int
    """Rows B gets right and A gets wrong."""

    def to_dict(self) -> dict:
        return asdict(self)


def paired_bootstrap(
    a_correct,
    b_correct,
    *,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> PairedBootstrap:
    """Bootstrap the accuracy margin of A over B on the same rows: per row, whether each
    got it right (booleans, or for A the fraction of several runs that did)."""
    a = np.asarray(a_correct, dtype=np.float64)
    b = np.asarray(b_correct, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(
            f"paired bootstrap: A and B need one value per row (got {a.shape} and {b.shape})"
        )
    if not len(a):
        raise ValueError("paired bootstrap: no rows")
    if not 0.5 <= confidence < 1:
        raise ValueError(f"paired bootstrap: confidence {confidence} not in [0.5, 1)")
    diff = a - b
    n = len(diff)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    if not diff.any():  # identical correctness: every resample is 0
        means[:] = 0.0
    else:
        for start in range(0, resamples, _CHUNK):
            size = min(_CHUNK, resamples - start)
            idx = rng.integers(0, n, size=(size, n))
            means[start : start + size] = diff[idx].mean(axis=1)
    tail = 1.0 - confidence
    return PairedBootstrap(
        n=n,
        observed=float(diff.mean()),
        low=float(np.quantile(means, tail / 2)),
        high=float(np.quantile(means, 1 - tail / 2)),
        lower_bound=float(np.quantile(means, tail)),
        confidence=confidence,
        resamples=resamples,
        seed=seed,
        a_only=int((diff > 0).sum()),
        b_only=int((diff < 0).sum()),
    )
