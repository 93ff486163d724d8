"""Drift signals between a production window and the champion's reference data.

Evidently computes the scores; this module decides what they mean. Each signal is one number,
higher meaning more drift:

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

Evidently's default thresholds are not calibrated to window size, so :func:`calibrate`
bootstraps windows from held-out reference-like data, records each signal's null
distribution and sets per-signal thresholds at the false-alarm rate asked. :func:`verdict`
compares scores with those thresholds. With ``s`` signals each at rate ``a``, the chance that a
clean window fires at least one is at most ``s * a``.

The scores are Evidently's: ``engine="report"`` runs a ``Report`` of one ``ValueDrift`` per
column (as :func:`report_html` does); the default ``engine="stattest"`` calls the same
registered Evidently stat tests directly, which gives the same numbers (tested) without the
plots every ``ValueDrift`` renders (4-8x faster on small windows; calibration runs dozens).
Evidently is imported inside the functions that need it (the import costs seconds).
"""

from __future__ import annotations

import math
import re
import statistics
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modelops.config.errors import InputError
from modelops.config.monitoring import SIGNALS

if TYPE_CHECKING:
    import pandas


_SOURCE = "drift"
# Evidently stat-test names per column kind (``ValueDrift(method=...)``).
_METHODS = {"text": "abs_text_content_drift", "num": "wasserstein", "cat": "jensenshannon"}
ENGINES = ("stattest", "report")
_NO_WORDS_AUC = 0.5  # the text domain classifier's score when no text holds a usable word
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")
_PROJECTION_FIT_ROWS = 20_000
_THRESHOLD_RULE = "max(empirical quantile (numpy 'higher'), normal fit, log-normal fit)"

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


# --- scores ---------------------------------------------------------------------------------


def _oov_rates(texts: Sequence[str], vocabulary: set[str] | frozenset[str]) -> np.ndarray:
    rates = np.zeros(len(texts))
    for i, text in enumerate(texts):
        tokens = words(text)
        if tokens:
            rates[i] = sum(token not in vocabulary for token in tokens) / len(tokens)
    return rates


def _frames(
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


def _signal_of(column: str) -> str:
    return "embedding" if column.startswith(_PC_PREFIX) else _COLUMNS[column]


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence Evidently's import-time deprecation notices and the convergence warnings of its
    text domain classifier (an SGD capped at 50 iterations; not actionable here)."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def _run_report(
    reference: pandas.DataFrame,
    current: pandas.DataFrame,
    kinds: Mapping[str, str],
    thresholds: Mapping[str, float] | None = None,
    include_tests: bool = False,
) -> Any:
    """Evidently's ``Report``: one ``ValueDrift`` per column, ``current`` vs ``reference``."""
    with _quiet():
        from evidently import DataDefinition, Dataset, Report
        from evidently.metrics import ValueDrift

        definition = DataDefinition(
            text_columns=[c for c, kind in kinds.items() if kind == "text"],
            numerical_columns=[c for c, kind in kinds.items() if kind == "num"],
            categorical_columns=[c for c, kind in kinds.items() if kind == "cat"],
        )
        metrics = [
            ValueDrift(
                column=column,
                method=_METHODS[kind],
                threshold=(thresholds or {}).get(_signal_of(column)),
            )
            for column, kind in kinds.items()
        ]
        return Report(metrics, include_tests=include_tests).run(
            Dataset.from_pandas(current, data_definition=definition),
            Dataset.from_pandas(reference, data_definition=definition),
        )


def _report_with_text_fallback(
    reference: pandas.DataFrame,
    current: pandas.DataFrame,
    kinds: Mapping[str, str],
    thresholds: Mapping[str, float] | None = None,
    include_tests: bool = False,
) -> tuple[Any, dict[str, str]]:
    """Run the report; when the texts hold no usable word, run it again without the text column
    (one failing column fails a whole Evidently report). Returns the snapshot and the kinds
    it covers."""
    try:
        return _run_report(reference, current, kinds, thresholds, include_tests), dict(kinds)
    except ValueError as exc:
        if "text" not in kinds or not _no_words(exc):
            raise
    rest = {column: kind for column, kind in kinds.items() if kind != "text"}
    return _run_report(reference, current, rest, thresholds, include_tests), rest


def _report_scores(
    reference: pandas.DataFrame, current: pandas.DataFrame, kinds: Mapping[str, str]
) -> dict[str, float]:
    snapshot, covered = _report_with_text_fallback(reference, current, kinds)
    scores = {m["config"]["column"]: float(m["value"]) for m in snapshot.dict()["metrics"]}
    if "text" in kinds and "text" not in covered:
        scores["text"] = _NO_WORDS_AUC
    missing = set(kinds) - set(scores)
    if missing:  # never expected: Evidently returns one value per ValueDrift
        raise RuntimeError(f"Evidently returned no drift score for {sorted(missing)}")
    return {column: scores[column] for column in kinds}


def _stattest_scores(
    reference: pandas.DataFrame, current: pandas.DataFrame, kinds: Mapping[str, str]
) -> dict[str, float]:
    """The scores ``ValueDrift`` computes, from the same Evidently stat tests, without the
    plots every ``ValueDrift`` renders (about 4/5 of a report's time on small windows)."""
    with _quiet():
        from evidently.legacy.calculations.stattests import get_stattest
        from evidently.legacy.core import ColumnType

        types = {
            "text": ColumnType.Text,
            "num": ColumnType.Numerical,
            "cat": ColumnType.Categorical,
        }
        scores = {}
        for column, kind in kinds.items():
            # As Evidently's get_one_column_drift: infinities are missing, missing rows dropped.
            ref = reference[column].replace([-np.inf, np.inf], np.nan).dropna()
            cur = current[column].replace([-np.inf, np.inf], np.nan).dropna()
            test = get_stattest(ref, cur, types[kind], _METHODS[kind])
            try:
                scores[column] = float(test(ref, cur, types[kind], None).drift_score)
            except ValueError as exc:
                if kind != "text" or not _no_words(exc):
                    raise
                scores[column] = _NO_WORDS_AUC
    return scores


def _no_words(exc: ValueError) -> bool:
    """Whether scikit-learn's TF-IDF found no usable word (every word a stop word or in more
    than half of all texts): the domain classifier has nothing to tell the sides apart by."""
    return "empty vocabulary" in str(exc) or "no terms remain" in str(exc)


def column_scores(
    reference: Window,
    current: Window,
    *,
    vocabulary: set[str] | frozenset[str] | None = None,
    pca: Projection | None = None,
    engine: str = "stattest",
) -> dict[str, float]:
    """Evidently's drift score per column (``embedding_pc0``.. for the embedding components).

    ``engine="report"`` runs Evidently's ``Report`` with one ``ValueDrift`` per column (what
    :func:`report_html` shows); ``"stattest"`` (default) calls the same Evidently stat tests
    directly and returns the same numbers several times faster (no plots rendered).
    """
    if engine not in ENGINES:
        raise InputError(_SOURCE, "engine", f"must be one of {', '.join(ENGINES)}, got {engine!r}")
    ref, cur, kinds = _frames(reference, current, vocabulary, pca)
    if engine == "report":
        return _report_scores(ref, cur, kinds)
    return _stattest_scores(ref, cur, kinds)


def signal_scores(
    reference: Window,
    current: Window,
    *,
    vocabulary: set[str] | frozenset[str] | None = None,
    pca: Projection | None = None,
    engine: str = "stattest",
) -> dict[str, float]:
    """One drift score per signal (see the module docstring), higher = more drift.

    A signal whose inputs are missing is absent from the result: ``oov_rate`` without a
    ``vocabulary``, ``embedding`` unless both windows have embeddings, ``label`` unless both
    have feedback labels. Without ``pca`` the projection is fitted on ``reference`` (the same
    reference always gives the same projection); pass the stored one to save the fit.
    ``engine``: see :func:`column_scores` (both give the same numbers).
    """
    per_column = column_scores(reference, current, vocabulary=vocabulary, pca=pca, engine=engine)
    scores: dict[str, float] = {}
    for column, score in per_column.items():
        signal = _signal_of(column)
        scores[signal] = max(score, scores.get(signal, -math.inf))
    return {signal: scores[signal] for signal in SIGNALS if signal in scores}


# --- calibration ----------------------------------------------------------------------------


def threshold_from_null(null: Sequence[float], false_alarm_rate: float) -> float:
    """The conservative ``(1 - false_alarm_rate)`` quantile of a null distribution.

    The largest of three estimates: the empirical quantile (numpy's ``higher`` method, so with
    fewer than ``1 / false_alarm_rate`` samples it is the maximum), the quantile of a normal
    fitted to the samples, and, when every sample is positive, that of a log-normal (distances
    are skewed to the right, where a normal fit falls short). The fits extrapolate past the
    largest sample when few bootstraps were drawn. Each estimate grows as the rate falls, so
    the threshold does too.
    """
    values = np.asarray(null, dtype=float)
    if values.size == 0 or not np.isfinite(values).all():
        raise InputError(_SOURCE, "null_scores", "must be a non-empty list of finite numbers")
    q = 1.0 - false_alarm_rate
    z = statistics.NormalDist().inv_cdf(q)
    estimates = [float(np.quantile(values, q, method="higher"))]
    if values.size > 1:
        estimates.append(float(values.mean() + z * values.std(ddof=1)))
        if (values > 0).all():
            logs = np.log(values)
            estimates.append(float(np.exp(logs.mean() + z * logs.std(ddof=1))))
    return max(estimates)


@dataclass
class Calibration:
    """Per-signal thresholds for windows of ``window_size`` rows against one reference."""

    window_size: int
    false_alarm_rate: float
    n_bootstrap: int
    thresholds: dict[str, float]
    null_scores: dict[str, list[float]]
    reference_rows: int = 0
    rule: str = _THRESHOLD_RULE

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return {
            "window_size": int(self.window_size),
            "false_alarm_rate": float(self.false_alarm_rate),
            "n_bootstrap": int(self.n_bootstrap),
            "thresholds": {k: float(v) for k, v in self.thresholds.items()},
            "null_scores": {k: [float(x) for x in v] for k, v in self.null_scores.items()},
            "reference_rows": int(self.reference_rows),
            "rule": self.rule,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Calibration:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(
                window_size=int(d["window_size"]),
                false_alarm_rate=float(d["false_alarm_rate"]),
                n_bootstrap=int(d["n_bootstrap"]),
                thresholds={str(k): float(v) for k, v in d["thresholds"].items()},
                null_scores={str(k): [float(x) for x in v] for k, v in d["null_scores"].items()},
                reference_rows=int(d.get("reference_rows", 0)),
                rule=str(d.get("rule", _THRESHOLD_RULE)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(_SOURCE, "calibration", f"is not a stored calibration: {exc}") from exc

    def at_rate(self, false_alarm_rate: float) -> Calibration:
        """The same null scores with thresholds at another false-alarm rate."""
        _check_rate(false_alarm_rate)
        thresholds = {
            signal: threshold_from_null(null, false_alarm_rate)
            for signal, null in self.null_scores.items()
        }
        return replace(self, false_alarm_rate=false_alarm_rate, thresholds=thresholds)


def _check_rate(false_alarm_rate: float) -> None:
    if not 0.0 < false_alarm_rate < 0.5:
        raise InputError(
            _SOURCE, "false_alarm_rate", f"must be in (0, 0.5), got {false_alarm_rate!r}"
        )


def calibrate(
    reference: Window,
    holdout: Window,
    *,
    window_size: int,
    false_alarm_rate: float = 0.01,
    n_bootstrap: int = 50,
    seed: int = 0,
    label_rows: int | None = None,
    vocabulary: set[str] | frozenset[str] | None = None,
    pca: Projection | None = None,
    engine: str = "stattest",
) -> Calibration:
    """Per-signal thresholds from bootstrapped no-drift windows.

    Draws ``n_bootstrap`` windows of ``window_size`` rows from ``holdout`` (reference-like
    data the model did not train on and that is not in ``reference``; several times the window
    size), with replacement as a bootstrap does: drawing without replacement from a holdout not
    much larger than the window makes windows too alike and the null too narrow. Scores each
    window against ``reference`` with :func:`signal_scores` and sets each threshold with
    :func:`threshold_from_null`. ``label_rows`` keeps labels on only that many rows of each
    window, to match how much feedback production windows carry (default: all rows).
    Without ``pca`` one projection is fitted on ``reference`` (the one ``signal_scores``
    would fit); pass the same ``vocabulary`` and ``pca`` when scoring production windows.
    Cost: ``n_bootstrap`` Evidently reports against the whole reference.
    """
    _check_rate(false_alarm_rate)
    if n_bootstrap < 2:
        raise InputError(_SOURCE, "n_bootstrap", f"must be >= 2, got {n_bootstrap}")
    if not 1 <= window_size <= len(holdout):
        raise InputError(
            _SOURCE, "window_size",
            f"must be between 1 and the holdout's {len(holdout)} rows, got {window_size}",
        )  # fmt: skip
    if label_rows is not None and not 0 <= label_rows <= window_size:
        raise InputError(_SOURCE, "label_rows", f"must be in [0, {window_size}], got {label_rows}")
    if pca is None and reference.embeddings is not None and holdout.embeddings is not None:
        pca = fit_projection(reference.embeddings)
    rng = np.random.default_rng(seed)
    null: dict[str, list[float]] = {}
    for _ in range(n_bootstrap):
        window = holdout.take(rng.choice(len(holdout), size=window_size, replace=True))
        if label_rows is not None and window.labels is not None:
            keep = set(rng.choice(window_size, size=label_rows, replace=False).tolist())
            labels = [label if i in keep else None for i, label in enumerate(window.labels)]
            window = replace(window, labels=labels)
        scores = signal_scores(reference, window, vocabulary=vocabulary, pca=pca, engine=engine)
        for signal, score in scores.items():
            null.setdefault(signal, []).append(score)
    thresholds = {
        signal: threshold_from_null(values, false_alarm_rate)
        for signal, values in null.items()
        if len(values) == n_bootstrap
    }
    return Calibration(
        window_size=window_size,
        false_alarm_rate=false_alarm_rate,
        n_bootstrap=n_bootstrap,
        thresholds=thresholds,
        null_scores={signal: null[signal] for signal in thresholds},
        reference_rows=len(reference),
    )


# --- verdict --------------------------------------------------------------------------------

ACCURACY = "estimated_accuracy"


@dataclass
class Verdict:
    """Whether a window drifted, which signals fired, and why (one sentence)."""

    drifted: bool
    fired: list[str]
    scores: dict[str, float]
    thresholds: dict[str, float]
    estimated_accuracy: float | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return {
            "drifted": bool(self.drifted),
            "fired": list(self.fired),
            "scores": {k: float(v) for k, v in self.scores.items()},
            "thresholds": {k: float(v) for k, v in self.thresholds.items()},
            "estimated_accuracy": (
                None if self.estimated_accuracy is None else float(self.estimated_accuracy)
            ),
            "reason": self.reason,
        }


def verdict(
    scores: Mapping[str, float],
    calibration: Calibration,
    *,
    signals: Sequence[str] | None = None,
    estimated_accuracy: float | None = None,
    min_accuracy: float | None = None,
) -> Verdict:
    """Compare ``scores`` with the calibrated thresholds (a signal fires when score > threshold).

    ``signals`` limits the check (default: every scored signal that has a threshold; a named
    signal that was not calibrated is an error, one that was not scored is skipped). When
    ``min_accuracy`` is given, an ``estimated_accuracy`` below it fires too (listed as
    ``estimated_accuracy``). Thresholds hold for windows of ``calibration.window_size`` rows.
    """
    if signals is None:
        chosen = [s for s in scores if s in calibration.thresholds]
    else:
        unknown = [s for s in signals if s not in calibration.thresholds]
        if unknown:
            raise InputError(
                _SOURCE, "signals",
                f"not calibrated: {', '.join(unknown)} "
                f"(calibrated: {', '.join(calibration.thresholds) or 'none'})",
            )  # fmt: skip
        chosen = [s for s in signals if s in scores]
    order = {s: i for i, s in enumerate(SIGNALS)}
    chosen = sorted(dict.fromkeys(chosen), key=lambda s: order.get(s, len(order)))
    used = {s: float(calibration.thresholds[s]) for s in chosen}
    checked = {s: float(scores[s]) for s in chosen}
    fired = [s for s in chosen if checked[s] > used[s]]
    parts = [f"{s} {checked[s]:.3g} > {used[s]:.3g}" for s in fired]
    low_accuracy = (
        estimated_accuracy is not None
        and min_accuracy is not None
        and estimated_accuracy < min_accuracy
    )
    if low_accuracy:
        fired.append(ACCURACY)
        parts.append(f"estimated accuracy {estimated_accuracy:.3f} < {min_accuracy:.3f}")
    rate = f"{calibration.false_alarm_rate:g}"
    if fired:
        reason = f"Drift: {'; '.join(parts)} (thresholds at false-alarm rate {rate} per signal)."
    else:
        accuracy = (
            f", estimated accuracy {estimated_accuracy:.3f}"
            if estimated_accuracy is not None
            else ""
        )
        reason = (
            f"No drift: {len(chosen)} signal(s) at or below thresholds calibrated at false-alarm "
            f"rate {rate} for windows of {calibration.window_size} rows{accuracy}."
        )
    return Verdict(
        drifted=bool(fired),
        fired=fired,
        scores=checked,
        thresholds=used,
        estimated_accuracy=estimated_accuracy,
        reason=reason,
    )


# --- HTML report ----------------------------------------------------------------------------


def report_html(
    reference: Window,
    current: Window,
    path: Path,
    *,
    vocabulary: set[str] | frozenset[str] | None = None,
    pca: Projection | None = None,
    calibration: Calibration | None = None,
) -> Path:
    """Write Evidently's HTML report of ``current`` against ``reference`` to ``path``.

    One ``ValueDrift`` per column (text, text length, OOV rate, embedding components,
    prediction, confidence, label), with tests against the calibrated thresholds when a
    ``calibration`` is given (Evidently's defaults otherwise). No ``EmbeddingsDrift``: its
    t-SNE plot is slow. Returns ``path``.
    """
    ref, cur, kinds = _frames(reference, current, vocabulary, pca)
    thresholds = calibration.thresholds if calibration is not None else None
    snapshot, _ = _report_with_text_fallback(ref, cur, kinds, thresholds, include_tests=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))
    return path
