"""Monitoring an adapter in production: the reference it records at training time, which
the drift check of a production window (``modelops.monitoring.check``) compares against.
Evidently computes the scores (``modelops.monitoring.evidently_scores``); this module
decides what they are compared with.

At training, each adapter gets a ``monitoring/`` folder beside its weights:

- ``reference.parquet`` + ``reference_embeddings.safetensors``: held-out rows (validation
  and test split) with the adapter's predictions, confidences, true labels and the base
  model's sentence embeddings: the "no drift" reference;
- ``monitoring.json``: the vocabulary of the training texts, the PCA projection of the
  embeddings, the null scores of windows of the recipe's window size resampled from the
  other half of the held-out rows with the joint thresholds they give (the recipe's
  false-alarm rate for the whole verdict, at its confidence, and whether that rate is
  reachable), and the confidence calibrator for the label-free accuracy estimate.

Nothing here is pickled: JSON, Parquet and safetensors only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from modelops.config.progress import Emit
from modelops.config.recipe import Recipe
from modelops.domain.dataset import PreparedDataset
from modelops.domain.mapped_head import MappedHead
from modelops.ml.catalog import ResolvedBase
from modelops.ml.model import (
    PooledClassifier,
    embed_texts,
    load_base,
    load_classifier,
    predict_proba,
)
from modelops.monitoring.calibration import Calibration, calibrate
from modelops.monitoring.estimate import ConfidenceCalibrator
from modelops.monitoring.signals import Projection, Window, fit_projection, fit_vocabulary

log = logging.getLogger(__name__)
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
    head: MappedHead | None = None,
) -> dict:
    """Write ``adapter_dir/monitoring/``; returns the calibrated thresholds.

    ``head``: a mapped adapter's mapping; its predictions are then those of the new labels.
    """
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
    if head is not None:
        probs, labels = head.apply(probs, held["text"].tolist()), head.target_labels
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
    if len(holdout) < settings.window_size:  # the hash split is only about half and half
        emit(
            f"the bootstrap holdout has {len(holdout)} rows, fewer than a window of "
            f"{settings.window_size}: no drift reference for this adapter (lower "
            "monitoring.window_size or add data)"
        )
        return {}
    vocabulary = fit_vocabulary(dataset.split("train")["text"].tolist())
    projection = fit_projection(reference.embeddings, k=min(10, len(reference) - 1))
    emit(
        f"calibrating drift thresholds: {settings.n_bootstrap or 'enough'} null windows of "
        f"{settings.window_size} rows, false-alarm rate {settings.false_alarm_rate} of the "
        f"verdict at {settings.confidence:.0%} confidence"
    )
    calibration = calibrate(
        reference,
        holdout,
        window_size=settings.window_size,
        false_alarm_rate=settings.false_alarm_rate,
        n_bootstrap=settings.n_bootstrap,
        confidence=settings.confidence,
        signals=settings.signals,
        seed=recipe.training.seed,
        vocabulary=vocabulary,
        pca=projection,
        emit=emit,
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
    joint = calibration.joint()
    emit(f"drift calibration: {joint.sentence()}" + "".join(f"; {n}" for n in joint.notes))
    return calibration.thresholds


def calibration_summary(adapter_dir: Path) -> dict:
    """What an adapter's drift thresholds hold (rate, confidence, bound, reachable, notes),
    for its lineage and metadata; empty without a monitoring reference."""
    folder = adapter_dir / FOLDER
    if not (folder / BUNDLE_FILE).is_file():
        return {}
    doc = json.loads((folder / BUNDLE_FILE).read_text(encoding="utf-8"))
    joint = Calibration.from_dict(doc["calibration"]).joint()
    return {k: v for k, v in joint.to_dict().items() if k != "thresholds"}


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
