"""A teacher's soft labels, computed once and stored as an artifact with its sha256.

The artifact (``distillation/<recipe>/<version>/<digest>.safetensors``) holds the tensor
``log_probs`` (rows x labels, float32, the student's label order) and, in the
safetensors metadata, the texts in row order (the training split's, then the production
texts), the labels and the teacher. Its key is a digest of the teacher's weights, the
texts, the labels and the thread count, so a second training with the same teacher and
texts reuses it; the lineage records its sha256, and ``reproduce`` reads exactly these
bytes back (``modelops.lifecycle.lineage_run``).
"""

from __future__ import annotations

import json
import struct

import numpy as np
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from modelops.config.errors import IntegrityError
from modelops.config.fingerprint import sha256_bytes, sha256_json
from modelops.config.progress import Emit
from modelops.domain.dataset import PreparedDataset
from modelops.lifecycle.distillation import Distillation
from modelops.lifecycle.fetch import FetchedAdapter, load_adapter
from modelops.lifecycle.platform import Platform
from modelops.ml.distill import SoftTargets, teacher_log_probs
from modelops.ml.training import deterministic

FORMAT = "modelops.soft_labels/1"


def store_soft_labels(
    platform: Platform,
    recipe: str,
    version: str,
    distill: Distillation,
    dataset: PreparedDataset,
    emit: Emit,
) -> dict:
    """The teacher's soft labels of the training split and the production texts, stored
    (or found stored); the lineage's ``distillation`` record."""
    teacher, settings = distill.teacher, distill.settings
    train_texts = dataset.split("train")["text"].tolist()
    texts = train_texts + list(distill.production.texts)
    threads = platform.settings.torch_threads
    max_length = int(teacher.lineage["recipe_snapshot"]["recipe"]["training"]["max_length"])
    digest = sha256_json(
        {
            "teacher": teacher.weights_sha256,
            "texts": [sha256_bytes(t.encode("utf-8")) for t in texts],
            "labels": dataset.labels,
            "max_length": max_length,
            "threads": threads,
        }
    )
    key = f"distillation/{recipe}/{version}/{digest[:24]}.safetensors"
    store = platform.store
    if store.exists(key):
        data = store.get_bytes(key)
        emit(f"distillation: reusing the teacher's soft labels {store.uri_for(key)}")
    else:
        log_probs = _compute(platform, distill, texts, dataset.labels, max_length, emit)
        data = encode(log_probs, texts, len(train_texts), dataset.labels, teacher.weights_sha256)
        store.put_bytes(key, data)
    return {
        "teacher_recipe": teacher.recipe,
        "teacher_adapter_id": teacher.id,
        "teacher_weights_sha256": teacher.weights_sha256,
        "teacher_base_model": teacher.base_model,
        "teacher_taxonomy_version": teacher.taxonomy_version,
        "pinned": settings.adapter_id is not None,
        "temperature": settings.temperature,
        "alpha": settings.alpha,
        "production_texts": distill.production.record(settings.production_texts),
        "soft_labels": {
            "key": key,
            "uri": store.uri_for(key),
            "sha256": sha256_bytes(data),
            "rows": len(texts),
            "train_rows": len(train_texts),
            "production_rows": len(texts) - len(train_texts),
            "teacher_max_length": max_length,
        },
    }


def _compute(
    platform: Platform,
    distill: Distillation,
    texts: list[str],
    labels: list[str],
    max_length: int,
    emit: Emit,
) -> np.ndarray:
    """The teacher loaded on its base and run over ``texts``; columns in ``labels``' order."""
    threads = platform.settings.torch_threads
    emit(f"distillation: the teacher labels {len(texts)} texts")
    with FetchedAdapter(platform, distill.teacher) as fetched:
        teacher = load_adapter(platform, fetched)
        with deterministic(0, threads):
            log_probs = teacher_log_probs(
                teacher.tokenizer,
                teacher.model,
                texts,
                max_length=max_length,
                batch_size=128,
                emit=emit,
            )
    order = [teacher.labels.index(label) for label in labels]
    return np.ascontiguousarray(log_probs[:, order])


def encode(
    log_probs: np.ndarray, texts: list[str], train_rows: int, labels: list[str], teacher: str
) -> bytes:
    """The artifact's bytes: the tensor and, as metadata, what its rows are."""
    metadata = {
        "format": FORMAT,
        "texts": json.dumps(texts, ensure_ascii=False),
        "train_rows": str(train_rows),
        "labels": json.dumps(labels),
        "teacher_weights_sha256": teacher,
    }
    return save_tensors({"log_probs": torch.from_numpy(log_probs)}, metadata=metadata)


def _metadata(data: bytes) -> dict:
    """The safetensors header's ``__metadata__`` (the first 8 bytes give its length)."""
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + length])["__metadata__"]


def read_soft_labels(platform: Platform, record: dict, dataset: PreparedDataset) -> SoftTargets:
    """The stored soft labels of a lineage's ``distillation`` record, verified against
    its sha256 and the dataset's training split."""
    stored = record["soft_labels"]
    data = platform.store.get_bytes(stored["key"], expected_sha256=stored["sha256"])
    meta = _metadata(data)
    texts = json.loads(meta["texts"])
    train_rows = int(meta["train_rows"])
    where = stored["uri"]
    if meta.get("format") != FORMAT or json.loads(meta["labels"]) != dataset.labels:
        raise IntegrityError(f"{where}: not soft labels of this dataset's labels")
    if texts[:train_rows] != dataset.split("train")["text"].tolist():
        raise IntegrityError(f"{where}: its texts are not this dataset's training split")
    log_probs = load_tensors(data)["log_probs"]
    return SoftTargets(
        log_probs=log_probs,
        production_texts=tuple(texts[train_rows:]),
        temperature=float(record["temperature"]),
        alpha=float(record["alpha"]),
    )
