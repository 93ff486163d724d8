"""The drift check of one production window against an adapter's monitoring reference."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from modelops.config.recipe import Recipe
from modelops.ml.catalog import ResolvedBase
from modelops.monitoring import novelty_ranks
from modelops.monitoring.evidence import SHARES, EvidenceSettings, EvidenceState, signals_e_value
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
    evidence: EvidenceState | None = None,
    features: Features | None = None,
) -> DriftCheck:
    """Score a production window (columns id, text, predicted_label, confidence and,
    where feedback exists, true_label; ``adapter_id`` and ``out_of_scope`` where logged)
    against the adapter's reference.

    Out-of-scope flags come from the window's ``out_of_scope`` column where it holds one;
    the rows without one (logged before, or by an adapter without the model) are scored
    with the bundle's out-of-scope model on ``features`` of their text (a row without
    text or ``features`` counts as not flagged). An adapter without an out-of-scope model
    falls back to the frozen base's nearest-neighbour novelty (``novelty.novel_rows``).

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
    oos = bundle.out_of_scope
    novel, oos_scores, by_chance, computed = None, None, 0.0, 0
    if oos is not None:
        novel, oos_scores, computed = window_out_of_scope(
            bundle, window, features if has_text else None
        )
        by_chance = oos.null_rate
    elif current.embeddings is not None and reference.embeddings is not None:
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
        flagged_accuracy=None if oos is None else oos.flagged_accuracy,
        band=_band(oos, oos_scores),
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
            evidence,
            bundle,
            window,
            recipe,
            novel=novel,
            oos_scores=oos_scores,
            scores=scores,
            signals=chosen,
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
        out_of_scope=novel,
        out_of_scope_computed=computed,
    )


def _band(oos, scores: np.ndarray | None):
    """The estimate's band (``impact.assess``): rows past the wider threshold, its rate and
    accuracy; None without one (models stored before it) or without scores."""
    band = None if oos is None else oos.band
    if band is None or scores is None:
        return None
    wide = np.nan_to_num(np.asarray(scores, dtype=float), nan=-np.inf) > band["threshold"]
    return wide, float(band["rate"]), band["accuracy"]


def evidence_settings(bundle: MonitoringBundle, recipe: Recipe) -> EvidenceSettings:
    """What the accumulated tests hold against, for this champion and recipe."""
    calibrator = bundle.calibrator
    alpha = recipe.monitoring.evidence_alpha
    oos = bundle.out_of_scope
    reference_accuracy = calibrator.fitted_accuracy
    if oos is not None:
        # Flagged rows count as wrong (``_add_evidence``): on clean traffic that takes the
        # in-scope flagged rows' accuracy off the per-row mean. Both bounds are taken at
        # the ``flag_rate`` share of alpha, so clean traffic meets the nulls.
        share = alpha * SHARES["flag_rate"]
        null_flag_rate = oos.null_rate_upper(share / 2)
        if reference_accuracy is not None:
            reference_accuracy -= null_flag_rate * oos.flagged_accuracy_upper(share / 2)
    else:
        # The frozen base's novelty (``novelty.novel_rows``) flags QUANTILE of clean rows.
        null_flag_rate = QUANTILE if bundle.reference.embeddings is not None else None
    return EvidenceSettings(
        alpha=alpha,
        null_flag_rate=null_flag_rate,
        reference_accuracy=reference_accuracy,
        reference_rows=calibrator.n_fitted,
        policy_drop=recipe.retraining.min_estimated_drop,
        min_accuracy=recipe.monitoring.min_estimated_accuracy,
        drift=recipe.monitoring.evidence_drift_signals,
        novelty_reference=None if oos is None else oos.rank_fingerprint,
    )


def _add_evidence(evidence, bundle, window, recipe, *, novel, oos_scores, scores, signals):
    """The window added to ``evidence``: per-row flags and calibrated probabilities of the
    rows the evidence's adapter served; the drift e-value when the whole window is its and
    of the calibrated size. Returns the e-value (or None) and the new state."""
    ours = np.ones(len(window), dtype=bool)
    if "adapter_id" in window:
        ours = window["adapter_id"].to_numpy() == evidence.adapter_id
    ids = window["id"].to_numpy(dtype=np.int64)[ours]
    # The per-row probability of being right: the calibrated confidence; a row flagged
    # out of scope counts as wrong (the reference is lowered to match, evidence_settings).
    correct = bundle.calibrator.predict(window["confidence"].to_numpy(dtype=float)[ours])
    flags = None if novel is None else np.asarray(novel, dtype=bool)[ours]
    if flags is not None and bundle.out_of_scope is not None:
        correct = np.where(flags, 0.0, correct)
    window_e = None
    whole = bool(ours.all()) and len(window) == bundle.calibration.window_size
    if whole and recipe.monitoring.evidence_drift_signals:
        window_e, _ = signals_e_value(scores, bundle.calibration.null_scores, signals)
    settings = evidence_settings(bundle, recipe)
    oos, bins = bundle.out_of_scope, None
    if settings.novelty_reference and oos_scores is not None:
        chosen = np.asarray(oos_scores, dtype=float)[ours]  # NaN: a row that was not scored
        bins = np.where(np.isnan(chosen), np.nan, novelty_ranks.bins_of(oos.rank_edges, chosen))
    at = datetime.now(UTC)
    updated = evidence.update(
        settings,
        ids=ids,
        at=at,
        flags=flags,
        correct=correct,
        window_e=window_e,
        oos_bins=bins,
        rank_counts=None if bins is None else oos.rank_counts,
    )
    return window_e, updated


def window_flags(
    bundle: MonitoringBundle, window: pd.DataFrame, features: Features | None
) -> tuple[np.ndarray | None, int]:
    """Each row's out-of-scope flag (None when the bundle has no out-of-scope model) and
    how many were computed here rather than read from the ``out_of_scope`` column."""
    flags, _, computed = window_out_of_scope(bundle, window, features)
    return flags, computed


def window_out_of_scope(
    bundle: MonitoringBundle, window: pd.DataFrame, features: Features | None
) -> tuple[np.ndarray | None, np.ndarray | None, int]:
    """Each row's out-of-scope flag and score (None, None without an out-of-scope model) and
    how many rows were scored here: those without a logged ``out_of_scope`` flag, from
    ``features`` of their text (a row logged with a flag keeps its logged score, NaN when
    none was logged: the novelty test on ranks then leaves it out). A row that cannot be scored
    (no ``features``) is not flagged and its score is NaN."""
    model = bundle.out_of_scope
    if model is None:
        return None, None, 0
    n = len(window)
    stored = window["out_of_scope"].tolist() if "out_of_scope" in window else [None] * n
    known = np.array([not (v is None or v != v) for v in stored], dtype=bool)
    logged = window["oos_score"].tolist() if "oos_score" in window else [None] * n
    scores = np.array([np.nan if v is None or v != v else float(v) for v in logged], float)
    missing = np.flatnonzero(~known)
    if missing.size and features is not None:
        texts = [str(window["text"].iloc[i]) for i in missing]
        confidence = window["confidence"].to_numpy(dtype=float)[missing]
        scores[missing] = model.scores(features(texts), confidence)
    flags = model.flags(np.nan_to_num(scores, nan=-np.inf))  # unscored: not flagged
    flags[known] = [bool(v) for v, k in zip(stored, known, strict=True) if k]
    return flags, scores, int(missing.size) if features is not None else 0
