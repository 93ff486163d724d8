"""What ``drift_banking77.py --evidence`` scores each text with, computed once per adapter and
cached: the adapter's logits and its pooled features (what its head consumes) from ONE
forward pass, and the frozen base's sentence embeddings (today's novelty score).

The cache (``--cache``, default ``<--home>/features``) holds one ``.npz`` per adapter and
row set (no pickle: float arrays and the rows' text hashes as fixed-width strings), keyed by
the adapter's weights hash and the texts' hash, so a reused champion needs no second pass and
the features of its training and validation rows stay available to build the parts of its
monitoring bundle that a newer platform stores (``OutOfScopeModel``) without retraining.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from modelops.lifecycle.fetch import FetchedAdapter
from modelops.ml.model import load_classifier, run_batches, tokenize
from modelops.monitoring.reference import base_embeddings


@dataclass
class Scored:
    """Rows as one adapter sees them (row order of the texts given)."""

    logits: np.ndarray  # (n, labels) float32
    features: np.ndarray  # (n, hidden) float32, the pooled (normalised) head input
    base: np.ndarray  # (n, hidden) float32, the frozen base's embeddings (or (n, 0))
    labels: list[str]  # the adapter's label order (columns of logits)

    @property
    def probs(self) -> np.ndarray:
        return torch.softmax(torch.from_numpy(self.logits).double(), dim=-1).numpy()

    def take(self, idx: np.ndarray) -> Scored:
        return Scored(self.logits[idx], self.features[idx], self.base[idx], self.labels)


def texts_key(texts: list[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(hashlib.sha256(text.encode()).digest())
    return digest.hexdigest()[:16]


def _adapter_pass(plat, fetched: FetchedAdapter, texts: list[str], max_length: int):
    """Logits and pooled features of ``texts`` in one forward pass of the adapter."""
    base = plat.resolve_base_by_sha256(fetched.manifest["base_model"]["sha256"])
    tokenizer, model, labels = load_classifier(fetched.path, base.path, base_sha256=base.sha256)
    model.encoder = model.encoder.merge_and_unload()  # same outputs, fewer matmuls on CPU
    model.eval()

    def both(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        features = model.embed(ids, mask)
        return torch.cat([model.head(features), features], dim=1)

    out = run_batches(both, tokenize(tokenizer, texts, max_length), tokenizer.pad_token_id, 128)
    n_labels = len(labels)
    return out[:, :n_labels].astype(np.float32), out[:, n_labels:].astype(np.float32), labels


def _cached(path: Path | None, compute: Callable[[], dict], emit) -> dict:
    """Arrays from ``path`` when there, else computed and written (atomically)."""
    if path is not None and path.is_file():
        with np.load(path, allow_pickle=False) as stored:
            emit(f"read {path}")
            return {k: stored[k] for k in stored.files}
    arrays = compute()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)
        emit(f"cached at {path}")
    return arrays


def base_rows(plat, base_sha256: str, texts, max_length, cache, name, emit) -> np.ndarray:
    """The frozen base's embeddings of ``texts`` (cached by base and texts: they do not
    depend on the adapter, so they can be computed before it exists)."""
    path = cache / f"base-{base_sha256[:16]}-{name}-{texts_key(texts)}.npz" if cache else None

    def compute() -> dict:
        emit(f"embedding {len(texts)} {name} rows with the frozen base")
        base = plat.resolve_base_by_sha256(base_sha256)
        return {"base": base_embeddings(base, texts, max_length).astype(np.float32)}

    return _cached(path, compute, emit)["base"]


def score_rows(
    plat,
    champion,
    texts: list[str],
    max_length: int,
    cache: Path | None,
    name: str,
    emit: Callable[[str], None],
    *,
    with_base: bool = True,
) -> Scored:
    """``texts`` scored by ``champion`` (and, ``with_base``, embedded by its frozen base),
    from the cache when there."""
    key = texts_key(texts)
    path = cache / f"adapter-{champion.weights_sha256[:16]}-{name}-{key}.npz" if cache else None

    def compute() -> dict:
        emit(f"scoring {len(texts)} {name} rows (adapter features + logits, one pass)")
        with FetchedAdapter(plat, champion) as fetched:
            logits, features, labels = _adapter_pass(plat, fetched, texts, max_length)
        return {
            "logits": logits,
            "features": features,
            "labels": np.array(labels, dtype=str),
            "text_sha256": np.array(
                [hashlib.sha256(t.encode()).hexdigest() for t in texts], dtype=str
            ),
        }

    arrays = _cached(path, compute, emit)
    embedded = (
        base_rows(plat, champion.base_model_sha256, texts, max_length, cache, name, emit)
        if with_base
        else np.zeros((len(texts), 0), dtype=np.float32)
    )
    return Scored(arrays["logits"], arrays["features"], embedded, arrays["labels"].tolist())
