"""The drift check of one production window against an adapter's monitoring reference."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from modelops.config.recipe import Recipe
from modelops.ml.catalog import ResolvedBase
from modelops.monitoring.evidently_scores import signal_scores
from modelops.monitoring.impact import Decision, Impact, assess, decide_retraining
from modelops.monitoring.reference import MonitoringBundle, base_embeddings
from modelops.monitoring.report import report_html
from modelops.monitoring.signals import Window
from modelops.monitoring.verdict import Verdict, verdict


@dataclass
class DriftCheck:
    verdict: Verdict
    rows: int
    labelled_rows: int
    first_id: int
    last_id: int
    report_path: Path | None
    impact: Impact | None = None
    decision: Decision | None = None
    out_of_scope: np.ndarray | None = None
    """Each row's out-of-scope flag (None without an out-of-scope model)."""
    out_of_scope_computed: int = 0
    """Rows logged without a flag whose flag the check computed."""


Features = Callable[[Sequence[str]], np.ndarray]
"""The adapter's pooled features of texts (``LoadedAdapter.predict``'s second part)."""


def check_window(
    bundle: MonitoringBundle,
    window: pd.DataFrame,
    *,
    base: ResolvedBase,
    recipe: Recipe,
    report_path: Path | None = None,
    features: Features | None = None,
) -> DriftCheck:
    """Score a production window (columns id, text, predicted_label, confidence and,
    where feedback exists, true_label; ``out_of_scope`` where logged) against the
    adapter's reference.

    Out-of-scope flags come from the window's ``out_of_scope`` column where it holds one;
    the rows without one (logged before, or by an adapter without the model) are scored
    with the bundle's out-of-scope model on ``features`` of their text (a row without
    text or ``features`` counts as not flagged)."""
    settings = recipe.monitoring
    has_text = window["text"].notna().all()
    texts = window["text"].fillna("").tolist()
    labels = window["true_label"].tolist() if "true_label" in window else None
    if labels is not None and all(v is None or v != v for v in labels):
        labels = None
    current = Window(
        texts=texts if has_text else ["(redacted)"] * len(window),
        predicted=window["predicted_label"].tolist(),
        confidence=window["confidence"].to_numpy(dtype=float),
        embeddings=base_embeddings(base, texts, bundle.max_length) if has_text else None,
        labels=[None if v != v else v for v in labels] if labels is not None else None,
    )
    scores = signal_scores(
        bundle.reference, current, vocabulary=bundle.vocabulary, pca=bundle.projection
    )
    if not has_text:  # redacted: text signals would compare placeholders
        for name in ("text_domain_auc", "text_length", "oov_rate", "embedding"):
            scores.pop(name, None)
    reference = bundle.reference
    oos = bundle.out_of_scope
    novel, computed = window_flags(bundle, window, features if has_text else None)
    impact = assess(
        bundle.calibrator,
        current.confidence,
        predicted=current.predicted,
        labels=current.labels,
        known_labels={str(v) for v in (reference.labels or []) if v is not None},
        confidence=bundle.calibration.confidence,
        novel=novel,
        novel_by_chance=0.0 if oos is None else oos.null_rate,
        flagged_accuracy=None if oos is None else oos.flagged_accuracy,
    )
    chosen = [s for s in settings.signals if s in scores]
    result = verdict(
        scores,
        bundle.calibration,
        signals=chosen,
        estimated_accuracy=impact.estimated_accuracy,
        min_accuracy=settings.min_estimated_accuracy,
    )
    decision = decide_retraining(result, impact, recipe.retraining)
    if report_path is not None:
        report_html(
            bundle.reference,
            current,
            report_path,
            vocabulary=bundle.vocabulary,
            pca=bundle.projection,
            calibration=bundle.calibration,
            thresholds=result.thresholds,
        )
    return DriftCheck(
        verdict=result,
        rows=len(window),
        labelled_rows=current.labelled_rows if current.labels is not None else 0,
        first_id=int(window["id"].min()),
        last_id=int(window["id"].max()),
        report_path=report_path,
        impact=impact,
        decision=decision,
        out_of_scope=novel,
        out_of_scope_computed=computed,
    )


def window_flags(
    bundle: MonitoringBundle, window: pd.DataFrame, features: Features | None
) -> tuple[np.ndarray | None, int]:
    """Each row's out-of-scope flag (None when the bundle has no out-of-scope model) and
    how many were computed here rather than read from the ``out_of_scope`` column."""
    model = bundle.out_of_scope
    if model is None:
        return None, 0
    stored = window["out_of_scope"].tolist() if "out_of_scope" in window else [None] * len(window)
    unknown = [v is None or v != v for v in stored]  # null, or NaN from pandas
    missing = [i for i, u in enumerate(unknown) if u]
    flags = np.array([not u and bool(v) for v, u in zip(stored, unknown, strict=True)], bool)
    if missing and features is not None:
        texts = [str(window["text"].iloc[i]) for i in missing]
        confidence = window["confidence"].to_numpy(dtype=float)[missing]
        flags[missing] = model.flags(model.scores(features(texts), confidence))
        return flags, len(missing)
    return flags, 0
