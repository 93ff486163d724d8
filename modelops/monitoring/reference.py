"""Monitoring an adapter in production: the reference it records at training time, which
the drift check of a production window (``modelops.monitoring.check``) compares against.
Evidently computes the scores (``modelops.monitoring.evidently_scores``); this module
decides what they are compared with.

At training, each adapter gets a ``monitoring/`` folder beside its weights:

- ``reference.parquet`` + ``reference_embeddings.safetensors``: held-out rows (validation
  and test split) with the adapter's predictions, confidences, true labels and the base
  model's sentence embeddings: the "no drift" reference;
- ``out_of_scope.json`` + ``out_of_scope.safetensors``: the out-of-scope model every
  prediction is scored with (``modelops.monitoring.out_of_scope``: the adapter's features
  of its training rows and a threshold calibrated on its validation rows);
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
import math
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
    base_encoder,
    embed_texts,
    load_base,
    load_classifier,
    predict_with_features,
)
from modelops.ml.training import HELD_OUT, TrainedModel
from modelops.monitoring import novelty
from modelops.monitoring.calibration import Calibration, calibrate
from modelops.monitoring.estimate import ConfidenceCalibrator
from modelops.monitoring.out_of_scope import MONITORING_FOLDER, OutOfScopeModel
from modelops.monitoring.signals import Projection, Window, fit_projection, fit_vocabulary

log = logging.getLogger(__name__)
FOLDER = MONITORING_FOLDER
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
    novelty_threshold: float | None = None
    """The reference's ``novelty.novelty_threshold``: None in bundles written before it was
    stored (the drift check then computes it)."""
    out_of_scope: OutOfScopeModel | None = None
    """The adapter's out-of-scope model (``modelops.monitoring.out_of_scope``), the one its
    predictions were flagged with; None for adapters trained before it existed."""


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
    trained: TrainedModel | None = None,
) -> dict:
    """Write ``adapter_dir/monitoring/``; returns the calibrated thresholds.

    ``head``: a mapped adapter's mapping; its predictions are then those of the new labels.
    ``trained``: the adapter as just trained, still in memory, with the frozen base's
    features of the held-out rows: neither the adapter nor the base is loaded again.
    """
    settings = recipe.monitoring
    held = dataset.frame[dataset.frame["split"] != "train"].reset_index(drop=True)
    max_length = recipe.training.max_length
    scorer = _scorer(base, adapter_dir, trained)
    texts = held["text"].tolist()
    probs, labels, features = _held_out_scores(scorer, texts, max_length, head)
    predicted = [labels[i] for i in probs.argmax(1)] if len(held) else []
    correct = np.array([p == t for p, t in zip(predicted, held["label"], strict=True)], bool)
    _fit_out_of_scope(
        recipe,
        dataset,
        adapter_dir / FOLDER,
        scorer,
        (held, features, correct, probs.max(1) if len(held) else np.zeros(0)),
        emit,
    )
    if len(held) < 2 * settings.window_size:
        return _no_reference(
            emit,
            f"only {len(held)} held-out rows, fewer than two windows of {settings.window_size}",
        )
    window = Window(
        texts=texts,
        predicted=predicted,
        confidence=probs.max(1),
        embeddings=_held_out_embeddings(base, dataset, texts, max_length, trained),
        labels=held["label"].tolist(),
    )
    # Reference and bootstrap holdout: the two halves of the held-out rows, by text hash.
    first_half = np.array([int(h[-1], 16) % 2 == 0 for h in held["text_sha256"]])
    reference = window.take(np.flatnonzero(first_half))
    holdout = window.take(np.flatnonzero(~first_half))
    if len(holdout) < settings.window_size:  # the hash split is only about half and half
        return _no_reference(
            emit,
            f"the bootstrap holdout has {len(holdout)} rows, fewer "
            f"than a window of {settings.window_size}",
        )
    vocabulary = fit_vocabulary(dataset.split("train")["text"].tolist())
    projection = fit_projection(reference.embeddings, k=min(10, len(reference) - 1))
    calibration = _calibrate(recipe, reference, holdout, vocabulary, projection, emit)
    calibrator = ConfidenceCalibrator().fit(window.confidence, correct)
    _write_bundle(
        adapter_dir / FOLDER,
        reference,
        {
            "vocabulary": sorted(vocabulary),
            "projection": projection.to_dict(),
            "calibration": calibration.to_dict(),
            "calibrator": calibrator.to_dict(),
            "max_length": max_length,
            "pooling": base.entry.pooling,
            "novelty": _novelty_doc(reference.embeddings),
        },
    )
    emit(
        "drift thresholds: " + ", ".join(f"{k} {v:.3f}" for k, v in calibration.thresholds.items())
    )
    joint = calibration.joint()
    emit(f"drift calibration: {joint.sentence()}" + "".join(f"; {n}" for n in joint.notes))
    return calibration.thresholds


def _no_reference(emit: Emit, why: str) -> dict:
    emit(f"{why}: no drift reference for this adapter (lower monitoring.window_size or add data)")
    return {}


def _scorer(base: ResolvedBase, adapter_dir: Path, trained: TrainedModel | None):
    """The adapter's tokenizer, classifier and labels: as just trained, or loaded."""
    if trained is None:
        return load_classifier(adapter_dir, base.path)
    return trained.tokenizer, trained.model, trained.labels


def _held_out_scores(
    scorer, texts: list[str], max_length: int, head: MappedHead | None
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """The adapter's probabilities of the held-out rows, the labels they are over, and
    its pooled features of them (the same forward pass)."""
    tokenizer, model, labels = scorer
    probs, features = predict_with_features(tokenizer, model, texts, max_length=max_length)
    if head is not None:
        return head.apply(probs, texts), list(head.target_labels), features
    return probs, labels, features


def _fit_out_of_scope(
    recipe: Recipe,
    dataset: PreparedDataset,
    folder: Path,
    scorer,
    held_out: tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray],
    emit: Emit,
) -> OutOfScopeModel | None:
    """Fit and store the out-of-scope model (``modelops.monitoring.out_of_scope``): the
    adapter's features of its training rows (a seeded sample of at most
    ``max_reference_rows``), the threshold on the validation rows (the test rows when there
    are none), the flag rate and the flagged rows' accuracy measured on the test rows
    (the calibration rows when there are none besides them)."""
    settings = recipe.monitoring.out_of_scope
    held, features, correct, confidence = held_out
    splits = held["split"].to_numpy()
    train = dataset.split("train")
    calibrate_on = "validation" if (splits == "validation").any() else "test"
    calibration = splits == calibrate_on
    if len(train) == 0 or not calibration.any():
        emit("no training or held-out rows: no out-of-scope model for this adapter")
        return None
    measure = (splits != calibrate_on) if (splits != calibrate_on).any() else calibration
    texts = train["text"].tolist()
    if len(texts) > settings.max_reference_rows:
        rng = np.random.default_rng(recipe.training.seed)
        kept = np.sort(rng.choice(len(texts), settings.max_reference_rows, replace=False))
        texts = [texts[i] for i in kept]
    tokenizer, model, _ = scorer
    reference = embed_texts(tokenizer, model, texts, max_length=recipe.training.max_length)
    oos = OutOfScopeModel.fit(
        reference,
        features[calibration],
        false_flag_rate=settings.false_flag_rate,
        k=settings.k,
        max_reference_rows=settings.max_reference_rows,
        seed=recipe.training.seed,
        measure_features=features[measure],
        measure_correct=correct[measure],
        method=settings.method,
        calibration_confidence=confidence[calibration],
        measure_confidence=confidence[measure],
    )
    oos.save(folder)
    emit(
        f"out-of-scope model: threshold {oos.threshold:.4f} on {oos.n_calibration} "
        f"{calibrate_on} rows (false-flag rate <= {oos.false_flag_rate}); "
        f"{oos.held_out_flag_rate:.1%} of {oos.n_measured} held-out rows flagged"
        + (
            ""
            if np.isfinite(oos.threshold)
            else f"; too few {calibrate_on} rows for that rate (fewer than "
            f"{math.ceil(1 / oos.false_flag_rate) - 1}): nothing is flagged"
        )
    )
    return oos


def _held_out_embeddings(
    base: ResolvedBase,
    dataset: PreparedDataset,
    texts: list[str],
    max_length: int,
    trained: TrainedModel | None,
) -> np.ndarray:
    """The frozen base's embeddings of the held-out rows (``texts``, in the order of the
    dataset's frame), pooled as the base was trained: the training's own features when it
    pooled so, else the trained model with its adapter switched off (a full fine-tune: the
    base loaded again); loaded only without a trained model."""
    if trained is None:
        return base_embeddings(base, texts, max_length)
    splits = dataset.frame.loc[dataset.frame["split"] != "train", "split"].to_numpy()
    features = trained.base_features
    if (
        trained.pooling == base.entry.pooling
        and trained.model.normalize
        and set(splits) <= set(features)
    ):
        out = np.zeros((len(splits), features[HELD_OUT[0]].shape[1]), dtype=np.float32)
        for split in HELD_OUT:
            out[splits == split] = features[split]
        return out
    with base_encoder(trained.model.encoder, base.path) as encoder:
        frozen = PooledClassifier(encoder, 1, base.entry.pooling)
        return embed_texts(trained.tokenizer, frozen, texts, max_length=max_length)


def _calibrate(
    recipe: Recipe,
    reference: Window,
    holdout: Window,
    vocabulary: set[str],
    projection: Projection,
    emit: Emit,
) -> Calibration:
    settings = recipe.monitoring
    emit(
        f"calibrating drift thresholds: {settings.n_bootstrap or 'enough'} null windows of "
        f"{settings.window_size} rows, false-alarm rate {settings.false_alarm_rate} of the "
        f"verdict at {settings.confidence:.0%} confidence"
    )
    return calibrate(
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


def _novelty_doc(embeddings: np.ndarray) -> dict:
    """The novelty threshold of the reference rows, computed once here rather than by every
    drift check (``modelops.monitoring.novelty``; over a sample past its size), on the
    embeddings as they are stored (float32), so it equals what the check would compute."""
    threshold = novelty.novelty_threshold(np.asarray(embeddings, dtype=np.float32))
    sampled = novelty.threshold_sample(len(embeddings))
    return {
        "threshold": threshold if np.isfinite(threshold) else None,
        "quantile": novelty.QUANTILE,
        "rows": len(embeddings) if sampled is None else len(sampled),
    }


def _write_bundle(folder: Path, reference: Window, doc: dict) -> None:
    """The reference rows (Parquet), their embeddings (safetensors) and ``doc`` (JSON)."""
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
    (folder / BUNDLE_FILE).write_text(json.dumps(doc) + "\n", encoding="utf-8")


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
        novelty_threshold=_stored_threshold(doc.get("novelty")),
        out_of_scope=OutOfScopeModel.load(folder),
    )


def _stored_threshold(stored: dict | None) -> float | None:
    """The stored novelty threshold, when it was taken at the quantile the check uses."""
    if not stored or stored.get("threshold") is None:
        return None
    if stored.get("quantile") != novelty.QUANTILE:
        return None
    return float(stored["threshold"])
