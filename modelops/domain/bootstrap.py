"""Paired bootstrap over test rows: is model A's accuracy above model B's by a margin, with
stated confidence, or is the difference within the noise of the rows it was measured on?

Both models are scored on the same rows, so the rows are resampled together: each resample
draws n row indices with replacement and takes mean(a_correct - b_correct) on them. The
percentile interval of those means bounds the accuracy margin. Seeded, so the same inputs
give the same interval. :func:`paired_bootstrap_macro_f1` does the same for the macro-F1
margin, recomputing both macro-F1s on each resample (the cost gate weighs either metric).
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
    return _summary(means, float(diff.mean()), n, confidence, resamples, seed, diff > 0, diff < 0)


def paired_bootstrap_macro_f1(
    y,
    a_pred,
    b_pred,
    n_labels: int,
    *,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> PairedBootstrap:
    """Bootstrap the macro-F1 margin of A over B on the same rows: ``y`` the true label
    index per row, ``a_pred``/``b_pred`` each model's predicted index. Each resample draws
    the rows with replacement and recomputes both macro-F1s as
    ``modelops.domain.evaluation.evaluate`` does (the mean F1 of the labels present in the
    truth or in that model's predictions), so ``observed`` is the difference of the two
    evaluations' macro-F1."""
    y = np.asarray(y, dtype=np.int64)
    a = np.asarray(a_pred, dtype=np.int64)
    b = np.asarray(b_pred, dtype=np.int64)
    if not (y.shape == a.shape == b.shape) or y.ndim != 1:
        raise ValueError(
            f"paired bootstrap: y and both predictions need one value per row (got {y.shape}, "
            f"{a.shape} and {b.shape})"
        )
    if not len(y):
        raise ValueError("paired bootstrap: no rows")
    if not 0.5 <= confidence < 1:
        raise ValueError(f"paired bootstrap: confidence {confidence} not in [0.5, 1)")
    n = len(y)
    everything = np.arange(n)[None, :]
    observed = float(
        _macro_f1(y, a, everything, n_labels)[0] - _macro_f1(y, b, everything, n_labels)[0]
    )
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    if np.array_equal(a, b):  # the same predictions: every resample is 0
        means[:] = 0.0
    else:
        for start in range(0, resamples, _CHUNK):
            size = min(_CHUNK, resamples - start)
            idx = rng.integers(0, n, size=(size, n))
            means[start : start + size] = _macro_f1(y, a, idx, n_labels) - _macro_f1(
                y, b, idx, n_labels
            )
    a_right, b_right = a == y, b == y
    return _summary(
        means, observed, n, confidence, resamples, seed, a_right & ~b_right, b_right & ~a_right
    )


def _summary(means, observed, n, confidence, resamples, seed, a_only, b_only) -> PairedBootstrap:
    """The resampled margins ``means`` as intervals at ``confidence``."""
    tail = 1.0 - confidence
    return PairedBootstrap(
        n=n,
        observed=observed,
        low=float(np.quantile(means, tail / 2)),
        high=float(np.quantile(means, 1 - tail / 2)),
        lower_bound=float(np.quantile(means, tail)),
        confidence=confidence,
        resamples=resamples,
        seed=seed,
        a_only=int(np.sum(a_only)),
        b_only=int(np.sum(b_only)),
    )


def _macro_f1(y: np.ndarray, pred: np.ndarray, idx: np.ndarray, k: int) -> np.ndarray:
    """Macro-F1 of ``pred`` against ``y`` on each row of ``idx`` (resamples x rows of
    row indices): one value per resample."""
    size = idx.shape[0]
    offset = (np.arange(size) * k)[:, None]
    yt, pt = y[idx], pred[idx]
    right = yt == pt
    count = size * k
    tp = np.bincount((offset + yt)[right], minlength=count).reshape(size, k)
    support = np.bincount((offset + yt).ravel(), minlength=count).reshape(size, k)
    predicted = np.bincount((offset + pt).ravel(), minlength=count).reshape(size, k)
    both = support + predicted
    f1 = np.divide(2.0 * tp, both, out=np.zeros(both.shape), where=both > 0)
    present = both > 0
    return (f1 * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1)
