"""The drift check of one production window against an adapter's monitoring reference."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from modelops.config.recipe import Recipe
from modelops.ml.catalog import ResolvedBase
from modelops.monitoring.evidently_scores import signal_scores
from modelops.monitoring.impact import Decision, Impact, assess, decide_retraining
from modelops.monitoring.novelty import novel_rows
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


def check_window(
    bundle: MonitoringBundle,
    window: pd.DataFrame,
    *,
    base: ResolvedBase,
    recipe: Recipe,
    report_path: Path | None = None,
) -> DriftCheck:
    """Score a production window (columns id, text, predicted_label, confidence and,
    where feedback exists, true_label) against the adapter's reference."""
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
    novel, by_chance = None, 0.0
    if current.embeddings is not None and reference.embeddings is not None:
        novel, by_chance = novel_rows(
            current.embeddings, reference.embeddings, threshold=bundle.novelty_threshold
        )
    impact = assess(
        bundle.calibrator,
        current.confidence,
        predicted=current.predicted,
        labels=current.labels,
        known_labels={str(v) for v in (reference.labels or []) if v is not None},
        confidence=bundle.calibration.confidence,
        novel=novel,
        novel_by_chance=by_chance,
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
    )
