"""The drift check of one production window against an adapter's monitoring reference."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from modelops.config.recipe import Recipe
from modelops.ml.catalog import ResolvedBase
from modelops.monitoring.evidence import EvidenceSettings, EvidenceState, signals_e_value
from modelops.monitoring.evidently_scores import signal_scores
from modelops.monitoring.impact import Decision, Impact, assess, decide_retraining
from modelops.monitoring.novelty import QUANTILE, novel_rows
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
    evidence: EvidenceState | None = None
    """The evidence with this window added (None when the check was given none)."""
    window_e_value: float | None = None
    """The window's drift e-value (``evidence.signals_e_value``), when it counted."""


def check_window(
    bundle: MonitoringBundle,
    window: pd.DataFrame,
    *,
    base: ResolvedBase,
    recipe: Recipe,
    report_path: Path | None = None,
    evidence: EvidenceState | None = None,
) -> DriftCheck:
    """Score a production window (columns id, text, predicted_label, confidence and,
    where feedback exists, true_label; ``adapter_id`` where logged) against the adapter's
    reference.

    With ``evidence`` (the state accumulated for the serving champion so far), the
    window's rows above ``evidence.last_id`` served by ``evidence.adapter_id`` are added to
    it, and the decision is on the accumulated evidence (``impact.decide_on_evidence``);
    ``DriftCheck.evidence`` is the new state, for the caller to store."""
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
    window_e, updated = None, None
    if evidence is not None:
        window_e, updated = _add_evidence(
            evidence, bundle, window, recipe, novel=novel, scores=scores, signals=chosen
        )
    decision = decide_retraining(result, impact, recipe.retraining, evidence=updated)
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
        evidence=updated,
        window_e_value=window_e,
    )


def evidence_settings(bundle: MonitoringBundle, recipe: Recipe) -> EvidenceSettings:
    """What the accumulated tests hold against, for this champion and recipe."""
    calibrator = bundle.calibrator
    has_novelty = bundle.reference.embeddings is not None
    return EvidenceSettings(
        alpha=recipe.monitoring.evidence_alpha,
        # Today's novelty flags (``novelty.novel_rows``) flag QUANTILE of clean rows.
        null_flag_rate=QUANTILE if has_novelty else None,
        reference_accuracy=calibrator.fitted_accuracy,
        reference_rows=calibrator.n_fitted,
        policy_drop=recipe.retraining.min_estimated_drop,
        min_accuracy=recipe.monitoring.min_estimated_accuracy,
        drift=recipe.monitoring.evidence_drift_signals,
    )


def _add_evidence(evidence, bundle, window, recipe, *, novel, scores, signals):
    """The window added to ``evidence``: per-row flags and calibrated probabilities of the
    rows the evidence's adapter served; the drift e-value when the whole window is its and
    of the calibrated size. Returns the e-value (or None) and the new state."""
    ours = np.ones(len(window), dtype=bool)
    if "adapter_id" in window:
        ours = window["adapter_id"].to_numpy() == evidence.adapter_id
    ids = window["id"].to_numpy(dtype=np.int64)[ours]
    # The per-row probability of being right: the calibrated confidence.
    correct = bundle.calibrator.predict(window["confidence"].to_numpy(dtype=float)[ours])
    flags = None if novel is None else np.asarray(novel, dtype=bool)[ours]
    window_e = None
    whole = bool(ours.all()) and len(window) == bundle.calibration.window_size
    if whole and recipe.monitoring.evidence_drift_signals:
        window_e, _ = signals_e_value(scores, bundle.calibration.null_scores, signals)
    settings = evidence_settings(bundle, recipe)
    at = datetime.now(UTC)
    updated = evidence.update(
        settings, ids=ids, at=at, flags=flags, correct=correct, window_e=window_e
    )
    return window_e, updated
