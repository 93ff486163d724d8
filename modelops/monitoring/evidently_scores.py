"""Running Evidently: drift scores per column of the frames of ``modelops.monitoring.signals``
and, from them, one score per signal.

The scores are Evidently's: ``engine="report"`` runs a ``Report`` of one ``ValueDrift`` per
column (as ``modelops.monitoring.report.report_html`` does); the default
``engine="stattest"`` calls the same registered Evidently stat tests directly, which gives the
same numbers (tested) without the plots every ``ValueDrift`` renders (4-8x faster on small
windows; calibration runs dozens). When no text holds a usable word, the text domain
classifier has nothing to tell the sides apart by: its score is then 0.5 and a report runs
again without the text column. Evidently is imported inside the functions that need it (the
import costs seconds).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from modelops.config.errors import InputError
from modelops.config.monitoring import SIGNALS
from modelops.monitoring.signals import Projection, Window, column_frames, signal_of

if TYPE_CHECKING:
    import pandas


_SOURCE = "drift"
# Evidently stat-test names per column kind (``ValueDrift(method=...)``).
METHODS = {"text": "abs_text_content_drift", "num": "wasserstein", "cat": "jensenshannon"}
ENGINES = ("stattest", "report")
_NO_WORDS_AUC = 0.5  # the text domain classifier's score when no text holds a usable word


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
                method=METHODS[kind],
                threshold=(thresholds or {}).get(signal_of(column)),
            )
            for column, kind in kinds.items()
        ]
        return Report(metrics, include_tests=include_tests).run(
            Dataset.from_pandas(current, data_definition=definition),
            Dataset.from_pandas(reference, data_definition=definition),
        )


def report_with_text_fallback(
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
    snapshot, covered = report_with_text_fallback(reference, current, kinds)
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
            test = get_stattest(ref, cur, types[kind], METHODS[kind])
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
    the HTML report shows); ``"stattest"`` (default) calls the same Evidently stat tests
    directly and returns the same numbers several times faster (no plots rendered).
    """
    if engine not in ENGINES:
        raise InputError(_SOURCE, "engine", f"must be one of {', '.join(ENGINES)}, got {engine!r}")
    ref, cur, kinds = column_frames(reference, current, vocabulary, pca)
    if engine == "report":
        return _report_scores(ref, cur, kinds)
    return _stattest_scores(ref, cur, kinds)


def frame_signal_scores(
    reference: pandas.DataFrame, current: pandas.DataFrame, kinds: Mapping[str, str]
) -> dict[str, float]:
    """One score per signal from frames already built by ``column_frames`` (calibration
    builds the holdout's columns once and scores many windows of rows from them)."""
    return _per_signal(_stattest_scores(reference, current, kinds))


def _per_signal(per_column: Mapping[str, float]) -> dict[str, float]:
    scores: dict[str, float] = {}
    for column, score in per_column.items():
        signal = signal_of(column)
        scores[signal] = max(score, scores.get(signal, -math.inf))
    return {signal: scores[signal] for signal in SIGNALS if signal in scores}


def signal_scores(
    reference: Window,
    current: Window,
    *,
    vocabulary: set[str] | frozenset[str] | None = None,
    pca: Projection | None = None,
    engine: str = "stattest",
) -> dict[str, float]:
    """One drift score per signal (see ``modelops.monitoring.signals``), higher = more drift.

    A signal whose inputs are missing is absent from the result: ``oov_rate`` without a
    ``vocabulary``, ``embedding`` unless both windows have embeddings, ``label`` unless both
    have feedback labels. Without ``pca`` the projection is fitted on ``reference`` (the same
    reference always gives the same projection); pass the stored one to save the fit.
    ``engine``: see :func:`column_scores` (both give the same numbers).
    """
    return _per_signal(
        column_scores(reference, current, vocabulary=vocabulary, pca=pca, engine=engine)
    )
