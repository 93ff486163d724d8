"""Monitoring an adapter in production: what it records at training time, and the drift
check of a production window against it. Evidently computes the scores
(``modelops.core.drift``); this module decides what they are compared with.

At training, each adapter gets a ``monitoring/`` folder beside its weights:

- ``reference.parquet`` + ``reference_embeddings.safetensors``: held-out rows (validation
  and test split) with the adapter's predictions, confidences, true labels and the base
  model's sentence embeddings: the "no drift" reference;
- ``monitoring.json``: the vocabulary of the training texts, the PCA projection of the
  embeddings, the per-signal thresholds calibrated by bootstrapping windows of the recipe's
  window size from the other half of the held-out rows (at the recipe's false-alarm rate),
  and the confidence calibrator for the label-free accuracy estimate.

Nothing here is pickled: JSON, Parquet and safetensors only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from modelops.core.catalog import ResolvedBase
from modelops.core.dataset import PreparedDataset
from modelops.core.drift import (
    Calibration,
    Projection,
    Verdict,
    Window,
    calibrate,
    fit_projection,
    fit_vocabulary,
    report_html,
    signal_scores,
    verdict,
)
from modelops.core.modeling import (
    PooledClassifier,
    embed_texts,
    load_base,
    load_classifier,
    predict_proba,
)
from modelops.core.performance_estimate import ConfidenceCalibrator, estimate_accuracy
from modelops.core.recipe import Recipe

log = logging.getLogger(__name__)
Emit = Callable[[str], None]
FOLDER = "monitoring"
BUNDLE_FILE = "monitoring.json"
REFERENCE_FILE = "reference.parquet"
EMBEDDINGS_FILE = "reference_embeddings.safetensors"


@dataclass
class MonitoringBundle:
    reference: Window
    vocabulary: set[str]
    projection: Projection
    calibration: Calibration
    calibrator: ConfidenceCalibrator
    max_length: int
    pooling: str


def base_embeddings(base: ResolvedBase, texts: Sequence[str], max_length: int) -> np.ndarray:
    """Sentence embeddings of the frozen base model (the pooling it was trained with)."""
    tokenizer, encoder = load_base(base.path)
    model = PooledClassifier(encoder, 1, base.entry.pooling)
    return embed_texts(tokenizer, model, list(texts), max_length=max_length)


def build_bundle(
    *,
    recipe: Recipe,
    base: ResolvedBase,
    dataset: PreparedDataset,
    adapter_dir: Path,
    emit: Emit = log.info,
) -> dict:
    """Write ``adapter_dir/monitoring/``; returns the calibrated thresholds."""
    settings = recipe.monitoring
    held = dataset.frame[dataset.frame["split"] != "train"].reset_index(drop=True)
    if len(held) < 2 * settings.window_size:
        emit(
            f"only {len(held)} held-out rows, fewer than two windows of "
            f"{settings.window_size}: no drift reference for this adapter (lower "
            "monitoring.window_size or add data)"
        )
        return {}
    max_length = recipe.training.max_length
    tokenizer, model, labels = load_classifier(adapter_dir, base.path)
    probs = predict_proba(tokenizer, model, held["text"].tolist(), max_length=max_length)
    predicted = [labels[i] for i in probs.argmax(1)]
    confidence = probs.max(1)
    embeddings = base_embeddings(base, held["text"].tolist(), max_length)
    # Reference and bootstrap holdout: the two halves of the held-out rows, by text hash.
    first_half = np.array([int(h[-1], 16) % 2 == 0 for h in held["text_sha256"]])
    window = Window(
        texts=held["text"].tolist(),
        predicted=predicted,
        confidence=confidence,
        embeddings=embeddings,
        labels=held["label"].tolist(),
    )
    reference = window.take(np.flatnonzero(first_half))
    holdout = window.take(np.flatnonzero(~first_half))
    vocabulary = fit_vocabulary(dataset.split("train")["text"].tolist())
    projection = fit_projection(reference.embeddings, k=min(10, len(reference) - 1))
    emit(
        f"calibrating drift thresholds: {settings.n_bootstrap} windows of "
        f"{settings.window_size} rows, false-alarm rate {settings.false_alarm_rate} per signal"
    )
    calibration = calibrate(
        reference,
        holdout,
        window_size=settings.window_size,
        false_alarm_rate=settings.false_alarm_rate,
        n_bootstrap=settings.n_bootstrap,
        seed=recipe.training.seed,
        vocabulary=vocabulary,
        pca=projection,
    )
    correct = np.array([p == t for p, t in zip(predicted, held["label"], strict=True)])
    calibrator = ConfidenceCalibrator().fit(confidence, correct)
    folder = adapter_dir / FOLDER
    folder.mkdir(exist_ok=True)
    pd.DataFrame(
        {
            "text": reference.texts,
            "predicted": reference.predicted,
            "confidence": reference.confidence,
            "label": reference.labels,
        }
    ).to_parquet(folder / REFERENCE_FILE, index=False)
    save_file(
        {"embeddings": torch.from_numpy(np.ascontiguousarray(reference.embeddings, np.float32))},
        str(folder / EMBEDDINGS_FILE),
    )
    doc = {
        "vocabulary": sorted(vocabulary),
        "projection": projection.to_dict(),
        "calibration": calibration.to_dict(),
        "calibrator": calibrator.to_dict(),
        "max_length": max_length,
        "pooling": base.entry.pooling,
    }
    (folder / BUNDLE_FILE).write_text(json.dumps(doc) + "\n", encoding="utf-8")
    emit(
        "drift thresholds: " + ", ".join(f"{k} {v:.3f}" for k, v in calibration.thresholds.items())
    )
    return calibration.thresholds


def load_bundle(adapter_dir: Path) -> MonitoringBundle | None:
    folder = adapter_dir / FOLDER
    if not (folder / BUNDLE_FILE).is_file():
        return None
    doc = json.loads((folder / BUNDLE_FILE).read_text(encoding="utf-8"))
    frame = pd.read_parquet(folder / REFERENCE_FILE)
    embeddings = load_file(str(folder / EMBEDDINGS_FILE))["embeddings"].numpy()
    reference = Window(
        texts=frame["text"].tolist(),
        predicted=frame["predicted"].tolist(),
        confidence=frame["confidence"].to_numpy(),
        embeddings=embeddings,
        labels=frame["label"].tolist(),
    )
    return MonitoringBundle(
        reference=reference,
        vocabulary=set(doc["vocabulary"]),
        projection=Projection.from_dict(doc["projection"]),
        calibration=Calibration.from_dict(doc["calibration"]),
        calibrator=ConfidenceCalibrator.from_dict(doc["calibrator"]),
        max_length=int(doc["max_length"]),
        pooling=doc["pooling"],
    )


@dataclass
class DriftCheck:
    verdict: Verdict
    rows: int
    labelled_rows: int
    first_id: int
    last_id: int
    report_path: Path | None


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
    estimate = estimate_accuracy(bundle.calibrator, current.confidence)
    chosen = [s for s in settings.signals if s in scores]
    result = verdict(
        scores,
        bundle.calibration,
        signals=chosen,
        estimated_accuracy=estimate,
        min_accuracy=settings.min_estimated_accuracy,
    )
    if report_path is not None:
        report_html(
            bundle.reference,
            current,
            report_path,
            vocabulary=bundle.vocabulary,
            pca=bundle.projection,
            calibration=bundle.calibration,
        )
    return DriftCheck(
        verdict=result,
        rows=len(window),
        labelled_rows=current.labelled_rows if current.labels is not None else 0,
        first_id=int(window["id"].min()),
        last_id=int(window["id"].max()),
        report_path=report_path,
    )


def run_drift_check(platform, loaded, emit: Emit = log.info) -> dict:
    """The newest production window of a recipe against its serving champion.

    Returns the verdict with the window's ids, the adapter and the stored HTML report's
    URI. Raises when there is no serving adapter or fewer rows than the window size.
    """
    import tempfile

    from modelops.errors import ModelopsError
    from modelops.lifecycle import FetchedAdapter

    recipe = loaded.recipe
    champion = platform.registry.alias(loaded.name, "champion")
    if champion is None:
        raise ModelopsError(f"recipe {loaded.name!r} has no serving adapter to monitor")
    with FetchedAdapter(platform, champion) as fetched:
        bundle = load_bundle(fetched.path)
    if bundle is None:
        raise ModelopsError(f"adapter {champion.id} was trained without a monitoring reference")
    # Thresholds hold for the window size they were calibrated at: use that one.
    size = bundle.calibration.window_size
    if size != recipe.monitoring.window_size:
        emit(
            f"adapter {champion.id} was calibrated for windows of {size} rows; the recipe now "
            f"asks {recipe.monitoring.window_size} (takes effect with the next adapter)"
        )
    plog = platform.production_log
    window = plog.predictions(loaded.name, newest=True, limit=size)
    if len(window) < size:
        raise ModelopsError(
            f"recipe {loaded.name!r}: {len(window)} production rows, a window needs {size}"
        )
    feedback = plog.feedback(loaded.name)
    if len(feedback) and "prediction_id" in feedback:
        linked = feedback.dropna(subset=["prediction_id"]).drop_duplicates(
            "prediction_id", keep="last"
        )
        labels = dict(zip(linked["prediction_id"].astype(int), linked["true_label"], strict=True))
        window = window.assign(true_label=[labels.get(int(i)) for i in window["id"]])
    base = platform.resolve_base_by_sha256(champion.base_model_sha256)
    with tempfile.TemporaryDirectory(prefix="drift-") as tmp:
        check = check_window(
            bundle, window, base=base, recipe=recipe, report_path=Path(tmp) / "report.html"
        )
        window_name = f"window-{check.first_id}-{check.last_id}"
        key = f"drift/{loaded.name}/adapter-{champion.id}/{window_name}.html"
        uri = (
            platform.store.uri_for(key)
            if platform.store.exists(key)
            else platform.store.put_file(key, check.report_path).uri
        )
    result = check.verdict.to_dict()
    emit(f"drift check of rows {check.first_id}-{check.last_id}: {check.verdict.reason}")
    return {
        **result,
        "adapter_id": champion.id,
        "taxonomy_version": champion.taxonomy_version,
        "rows": check.rows,
        "labelled_rows": check.labelled_rows,
        "first_id": check.first_id,
        "last_id": check.last_id,
        "report_uri": uri,
        "window_size": size,
    }
