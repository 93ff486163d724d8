"""What a drift check compares and the signals it computes from it.

A :class:`Window` is one side of a comparison (texts, predictions, confidences, embeddings,
feedback labels). :func:`column_frames` turns a reference and a current window into the
columns Evidently scores (``modelops.monitoring.evidently_scores``), with the vocabulary
(:func:`fit_vocabulary`) for the OOV rate and the PCA :class:`Projection` of the embeddings.
Each signal is one number, higher meaning more drift:

==================  ========================================================================
signal              score (Evidently's ``ValueDrift`` stat test on one column each)
==================  ========================================================================
text_domain_auc     ROC AUC of Evidently's text domain classifier (TF-IDF + SGD trained to tell
                    reference from current texts; method ``abs_text_content_drift``)
text_length         normed Wasserstein distance of text length in characters
oov_rate            normed Wasserstein distance of the per-text share of words outside
                    ``vocabulary`` (skipped when no vocabulary is given)
embedding           the **max** over the PCA components of the embeddings of the normed
                    Wasserstein distance per component (max, not mean: a new intent or a new
                    register moves a few directions, and a mean over ten components dilutes
                    it; the calibrated threshold absorbs the higher null level of a max, and
                    "max > t" is the same as "some component > t", so the HTML report can show
                    the threshold per component.) The projection is fitted on the reference,
                    so content far off its top components shows less here than in the texts.
prediction          Jensen-Shannon distance of the predicted-label distribution
confidence          normed Wasserstein distance of the model's top probability
label               Jensen-Shannon distance of the true-label distribution over the rows that
                    carry feedback (skipped when either side has none)
==================  ========================================================================

Evidently computes the scores; ``modelops.monitoring.calibration`` and
``modelops.monitoring.verdict`` decide what they mean.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from modelops.config.errors import InputError

if TYPE_CHECKING:
    import pandas


_SOURCE = "drift"
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")
_PROJECTION_FIT_ROWS = 20_000

# Column in the Evidently datasets -> signal; embedding components are embedding_pc0, ...
_COLUMNS = {
    "text": "text_domain_auc",
    "text_length": "text_length",
    "oov_rate": "oov_rate",
    "prediction": "prediction",
    "confidence": "confidence",
    "label": "label",
}
_PC_PREFIX = "embedding_pc"


def words(text: str) -> list[str]:
    """The lower-cased words of ``text`` (runs of letters with inner apostrophes)."""
    return _WORD.findall(text.lower())


def fit_vocabulary(texts: Sequence[str], min_count: int = 1) -> set[str]:
    """Words (see :func:`words`) seen at least ``min_count`` times in ``texts``.

    Build it from the champion's *training* texts. If the reference window holds only those
    same texts, its OOV rates are all zero and Evidently's normed Wasserstein divides by a
    floor of 0.001: the scores are then large but still calibrated; a reference that also
    holds other rows (validation) gives readable numbers.
    """
    counts: dict[str, int] = {}
    for text in texts:
        for word in words(text):
            counts[word] = counts.get(word, 0) + 1
    return {word for word, count in counts.items() if count >= min_count}


# --- windows --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """One side of a comparison; every array is aligned by row.

    ``labels`` holds true labels where feedback exists (``None`` for rows without).
    """

    texts: list[str]
    predicted: list[str]
    confidence: np.ndarray
    embeddings: np.ndarray | None
    labels: list[str | None] | None = None

    def __post_init__(self) -> None:
        n = len(self.texts)
        if n == 0:
            raise InputError(_SOURCE, "window.texts", "is empty")
        for i, text in enumerate(self.texts):
            if not isinstance(text, str):
                raise InputError(_SOURCE, f"window.texts[{i}]", f"must be a string, got {text!r}")
        if len(self.predicted) != n:
            raise InputError(
                _SOURCE, "window.predicted", f"has {len(self.predicted)} rows, texts have {n}"
            )
        confidence = np.asarray(self.confidence, dtype=float)
        if confidence.shape != (n,):
            raise InputError(
                _SOURCE, "window.confidence", f"must have shape ({n},), got {confidence.shape}"
            )
        bad = np.flatnonzero(~np.isfinite(confidence) | (confidence < 0) | (confidence > 1))
        if bad.size:
            raise InputError(
                _SOURCE, f"window.confidence[{bad[0]}]",
                f"must be a probability in [0, 1], got {confidence[bad[0]]!r}",
            )  # fmt: skip
        object.__setattr__(self, "confidence", confidence)
        if self.embeddings is not None:
            embeddings = np.asarray(self.embeddings, dtype=float)
            if embeddings.ndim != 2 or embeddings.shape[0] != n:
                raise InputError(
                    _SOURCE,
                    "window.embeddings",
                    f"must have shape ({n}, d), got {embeddings.shape}",
                )
            if not np.isfinite(embeddings).all():
                raise InputError(_SOURCE, "window.embeddings", "holds NaN or infinite values")
            object.__setattr__(self, "embeddings", embeddings)
        if self.labels is not None and len(self.labels) != n:
            raise InputError(
                _SOURCE, "window.labels", f"has {len(self.labels)} rows, texts have {n}"
            )

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def labelled_rows(self) -> int:
        """How many rows carry a true label."""
        return sum(label is not None for label in self.labels or ())

    def take(self, rows: Sequence[int] | np.ndarray) -> Window:
        """The window made of ``rows`` (positions), in that order."""
        idx = np.asarray(rows, dtype=int)
        return Window(
            texts=[self.texts[i] for i in idx],
            predicted=[self.predicted[i] for i in idx],
            confidence=self.confidence[idx],
            embeddings=None if self.embeddings is None else self.embeddings[idx],
            labels=None if self.labels is None else [self.labels[i] for i in idx],
        )

    def sample(self, n: int, seed: int = 0) -> Window:
        """``n`` distinct rows drawn at random (for example to cap a large reference)."""
        if not 1 <= n <= len(self):
            raise InputError(_SOURCE, "sample.n", f"must be between 1 and {len(self)}, got {n}")
        rng = np.random.default_rng(seed)
        return self.take(np.sort(rng.choice(len(self), size=n, replace=False)))


# --- PCA projection of embeddings ----------------------------------------------------------


@dataclass(frozen=True)
class Projection:
    """A PCA projection: ``(x - mean) @ components.T``; stored as JSON, never pickled."""

    mean: np.ndarray  # (d,)
    components: np.ndarray  # (k, d), orthonormal rows
    explained_variance_ratio: list[float] = field(default_factory=list)

    @property
    def k(self) -> int:
        return int(self.components.shape[0])

    def transform(self, embeddings: np.ndarray) -> np.ndarray:
        """Project ``(n, d)`` embeddings onto the ``k`` components: ``(n, k)``."""
        x = np.asarray(embeddings, dtype=float)
        if x.ndim != 2 or x.shape[1] != self.mean.shape[0]:
            raise InputError(
                _SOURCE, "embeddings",
                f"must have shape (n, {self.mean.shape[0]}) for this projection, got {x.shape}",
            )  # fmt: skip
        return (x - self.mean) @ self.components.T

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and floats, JSON-ready."""
        return {
            "mean": [float(v) for v in self.mean],
            "components": [[float(v) for v in row] for row in self.components],
            "explained_variance_ratio": [float(v) for v in self.explained_variance_ratio],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Projection:
        """Inverse of :meth:`to_dict`."""
        try:
            mean = np.asarray(d["mean"], dtype=float)
            components = np.asarray(d["components"], dtype=float)
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(_SOURCE, "projection", f"is not a stored projection: {exc}") from exc
        if mean.ndim != 1 or components.ndim != 2 or components.shape[1] != mean.shape[0]:
            raise InputError(
                _SOURCE, "projection",
                f"components {components.shape} do not match mean {mean.shape}",
            )  # fmt: skip
        ratio = [float(v) for v in d.get("explained_variance_ratio", [])]
        return cls(mean=mean, components=components, explained_variance_ratio=ratio)


def fit_projection(embeddings: np.ndarray, k: int = 10, seed: int = 0) -> Projection:
    """PCA of ``embeddings`` onto ``k`` components (fewer if the data has fewer dimensions).

    Exact, on at most 20,000 rows (a seeded subsample above that): eigenvectors of the scatter
    matrix (an SVD when there are fewer rows than dimensions). Component signs are fixed
    (largest loading positive) so the same data always gives the same projection.
    """
    x = np.asarray(embeddings, dtype=float)
    if x.ndim != 2 or x.shape[0] < 2:
        raise InputError(_SOURCE, "embeddings", f"need shape (n >= 2, d), got {x.shape}")
    if k < 1:
        raise InputError(_SOURCE, "k", f"must be >= 1, got {k}")
    if x.shape[0] > _PROJECTION_FIT_ROWS:
        rows = np.random.default_rng(seed).choice(x.shape[0], _PROJECTION_FIT_ROWS, replace=False)
        x = x[np.sort(rows)]
    mean = x.mean(axis=0)
    centred = x - mean
    if centred.shape[1] <= centred.shape[0]:
        # eigenvectors of the d x d scatter matrix: the same axes as an SVD, 10-40x faster
        eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred)
        variance = np.clip(eigenvalues[::-1], 0.0, None)
        axes = eigenvectors[:, ::-1].T
    else:
        _, singular, axes = np.linalg.svd(centred, full_matrices=False)
        variance = singular**2
    k = min(k, axes.shape[0])
    components = axes[:k]
    signs = np.sign(components[np.arange(k), np.abs(components).argmax(axis=1)])
    components = components * np.where(signs == 0, 1.0, signs)[:, None]
    total = float(variance.sum()) or 1.0
    return Projection(mean, components, [float(v / total) for v in variance[:k]])


# --- the columns Evidently scores -----------------------------------------------------------


def _oov_rates(texts: Sequence[str], vocabulary: set[str] | frozenset[str]) -> np.ndarray:
    rates = np.zeros(len(texts))
    for i, text in enumerate(texts):
        tokens = words(text)
        if tokens:
            rates[i] = sum(token not in vocabulary for token in tokens) / len(tokens)
    return rates


def column_frames(
    reference: Window,
    current: Window,
    vocabulary: set[str] | frozenset[str] | None,
    pca: Projection | None,
) -> tuple[pandas.DataFrame, pandas.DataFrame, dict[str, str]]:
    """The two data frames and the column kinds ('text', 'num', 'cat') that both can feed."""
    import pandas

    kinds = {"text": "text", "text_length": "num", "prediction": "cat", "confidence": "num"}
    columns: list[dict[str, Any]] = []
    for window in (reference, current):
        columns.append(
            {
                "text": list(window.texts),
                "text_length": np.array([len(t) for t in window.texts], dtype=float),
                "prediction": [str(p) for p in window.predicted],
                "confidence": window.confidence,
            }
        )
    if vocabulary is not None:
        kinds["oov_rate"] = "num"
        for window, cols in zip((reference, current), columns, strict=True):
            cols["oov_rate"] = _oov_rates(window.texts, vocabulary)
    if reference.labelled_rows and current.labelled_rows:
        kinds["label"] = "cat"
        for window, cols in zip((reference, current), columns, strict=True):
            cols["label"] = [None if v is None else str(v) for v in window.labels or ()]
    if reference.embeddings is not None and current.embeddings is not None:
        if reference.embeddings.shape[1] != current.embeddings.shape[1]:
            raise InputError(
                _SOURCE, "current.embeddings",
                f"have {current.embeddings.shape[1]} dimensions, "
                f"the reference has {reference.embeddings.shape[1]}",
            )  # fmt: skip
        projection = pca if pca is not None else fit_projection(reference.embeddings)
        for window, cols in zip((reference, current), columns, strict=True):
            assert window.embeddings is not None
            projected = projection.transform(window.embeddings)
            for j in range(projection.k):
                cols[f"{_PC_PREFIX}{j}"] = projected[:, j]
                kinds[f"{_PC_PREFIX}{j}"] = "num"
    frames = [pandas.DataFrame({name: cols[name] for name in kinds}) for cols in columns]
    return frames[0], frames[1], kinds


def signal_of(column: str) -> str:
    """The signal a column of :func:`column_frames` feeds (``embedding_pc3`` -> embedding)."""
    return "embedding" if column.startswith(_PC_PREFIX) else _COLUMNS[column]
