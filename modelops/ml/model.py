"""The classifier: a (LoRA-adapted or fully fine-tuned) encoder, the pooling its base was
trained with, and a linear head. Saved as a standard PEFT directory plus the head and label
map, or for a full fine-tune the whole encoder's weights plus the same head and label map
(``modelops.ml.adapter_methods``).

Layout of a saved adapter directory::

    adapter_config.json          PEFT (LoRA on the encoder)
    adapter_model.safetensors    PEFT weights
      or encoder.safetensors     the whole encoder's weights (adapter.method: full)
    head.safetensors             linear head: weight [k, hidden], bias [k]
    labels.json                  {"labels": [...], "pooling": "mean", "normalize": true}
    manifest.json                lineage (see modelops.domain.lineage)

Outside modelops the encoder loads with plain ``PeftModel.from_pretrained(
AutoModel.from_pretrained(base), adapter_dir)`` (a full fine-tune:
``AutoModel.from_pretrained(base)`` then ``load_state_dict(safetensors.torch.load_file(
"encoder.safetensors"))``); docs/concepts.md shows the pooling.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from modelops.config.errors import IntegrityError
from modelops.ml.adapter_methods import (
    PEFT_WEIGHTS_FILE,
    encoder_weights_file,
    is_peft,
    load_encoder,
)
from modelops.ml.base_inspect import check_adapter_base

HEAD_FILE = "head.safetensors"
LABELS_FILE = "labels.json"
WEIGHT_FILES = (PEFT_WEIGHTS_FILE, HEAD_FILE)
"""The weight files of a LoRA adapter (:func:`weight_files` of any saved adapter)."""
# Files torch or transformers would unpickle: never loaded (arbitrary code on load).
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
BASE_LOADS = {"count": 0}
"""How many times :func:`load_base` loaded a base model in this process (a test counts
the loads of a training run)."""


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Mean over real tokens (sentence encoders such as MiniLM) or the [CLS] state."""
    if pooling == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class PooledClassifier(nn.Module):
    """encoder -> pooling -> (L2 normalization) -> linear head: the one forward pass of
    training, evaluation and serving.

    ``head``: a head already built (serving puts one classifier per adapter over the one
    shared copy of its base, each with its own head); default a new linear head."""

    def __init__(
        self,
        encoder: nn.Module,
        num_labels: int,
        pooling: str,
        normalize: bool = True,
        *,
        head: nn.Linear | None = None,
    ):
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        self.normalize = normalize
        hidden = encoder.config.hidden_size
        self.head = head if head is not None else nn.Linear(hidden, num_labels)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        pooled = pool(out.last_hidden_state, attention_mask, self.pooling)
        return nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(input_ids, attention_mask))

    def features_and_logits(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """One forward pass: the pooled features the head consumes and its logits, side
        by side (``[:, :hidden]`` and ``[:, hidden:]``); see :func:`split_features`."""
        features = self.embed(input_ids, attention_mask)
        return torch.cat([features, self.head(features)], dim=-1)


def load_base(path: Path) -> tuple[PreTrainedTokenizerBase, nn.Module]:
    """Tokenizer and encoder from a local directory (never a hub), safetensors weights
    only: a base whose weights would need unpickling is refused."""
    hf_logging.disable_progress_bar()
    if not any(Path(path).glob("*.safetensors")):
        pickled = sorted(p.name for p in Path(path).iterdir() if p.suffix in PICKLE_SUFFIXES)
        raise IntegrityError(
            f"base model {path}: no safetensors weights"
            + (
                f" (found {', '.join(pickled)}, which would need unpickling; refused)"
                if pickled
                else ""
            )
        )
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    encoder = AutoModel.from_pretrained(str(path), local_files_only=True, use_safetensors=True)
    BASE_LOADS["count"] += 1
    return tokenizer, encoder


def check_adapter_files(adapter_dir: Path) -> None:
    """Refuse an adapter directory without its safetensors weights or holding any file
    that would be unpickled (modelops never writes one)."""
    pickled = sorted(p.name for p in Path(adapter_dir).rglob("*") if p.suffix in PICKLE_SUFFIXES)
    if pickled:
        raise IntegrityError(
            f"adapter {adapter_dir}: {', '.join(pickled)} would need unpickling; refused "
            "(only safetensors weights load)"
        )
    missing = [n for n in weight_files(adapter_dir) if not (Path(adapter_dir) / n).is_file()]
    if missing:
        raise IntegrityError(f"adapter {adapter_dir}: {', '.join(missing)} missing")


def weight_files(adapter_dir: Path) -> tuple[str, str]:
    """The files holding a saved adapter's weights (what its weights sha256 covers): the
    encoder's (PEFT's, or the whole encoder of a full fine-tune) and the head."""
    return encoder_weights_file(adapter_dir), HEAD_FILE


@contextlib.contextmanager
def base_encoder(encoder: nn.Module, base_path: Path) -> Iterator[nn.Module]:
    """An encoder with the base's own weights: the PEFT encoder with its adapters switched
    off (no second load), or for a full fine-tune the base loaded again from ``base_path``."""
    if is_peft(encoder):
        with encoder.disable_adapter():
            yield encoder
        return
    yield load_base(base_path)[1].eval()


def save_head(model: PooledClassifier, labels: Sequence[str], directory: Path) -> None:
    head = {k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()}
    save_file(head, str(directory / HEAD_FILE))
    info = {"labels": list(labels), "pooling": model.pooling, "normalize": model.normalize}
    (directory / LABELS_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def load_classifier(
    adapter_dir: Path, base_path: Path, *, trainable: bool = False, base_sha256: str | None = None
) -> tuple[PreTrainedTokenizerBase, PooledClassifier, list[str]]:
    """Load a saved adapter onto its base; ``trainable`` for warm starts.

    A base other than the one the adapter's lineage records (sha256, architecture, shapes)
    is refused (``modelops.ml.base_inspect.check_adapter_base``); ``base_sha256`` saves
    hashing the base directory when the caller knows it."""
    check_adapter_files(adapter_dir)
    check_adapter_base(adapter_dir, base_path=base_path, base_sha256=base_sha256)
    tokenizer, encoder = load_base(base_path)
    encoder = load_encoder(encoder, adapter_dir, trainable=trainable)
    head, info = load_head(adapter_dir, encoder.config.hidden_size)
    model = PooledClassifier(
        encoder, len(info["labels"]), info["pooling"], info["normalize"], head=head
    )
    model.train(trainable)
    return tokenizer, model, list(info["labels"])


def load_head(adapter_dir: Path, hidden_size: int) -> tuple[nn.Linear, dict]:
    """The linear head of a saved adapter directory and its ``labels.json`` (labels,
    pooling, normalize)."""
    info = json.loads((Path(adapter_dir) / LABELS_FILE).read_text(encoding="utf-8"))
    head = nn.Linear(hidden_size, len(info["labels"]))
    head.load_state_dict(load_file(str(Path(adapter_dir) / HEAD_FILE)))
    return head, info


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    order = np.argsort(np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]


def collate(encoded: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a batch to its own longest sequence."""
    width = max(len(ids) for ids in encoded)
    input_ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, ids in enumerate(encoded):
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        mask[row, : len(ids)] = 1
    return input_ids, mask


def tokenize(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int) -> list:
    if not texts:  # fast tokenizers raise on an empty batch (e.g. no validation split)
        return []
    return tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]


@torch.inference_mode()
def run_batches(fn, encoded: Sequence[list[int]], pad_id: int, batch_size: int) -> np.ndarray:
    """Apply ``fn(input_ids, mask) -> tensor`` over length-sorted batches, in input order."""
    out: list[np.ndarray | None] = [None] * len(encoded)
    for batch in length_sorted_batches([len(e) for e in encoded], batch_size):
        ids, mask = collate([encoded[i] for i in batch], pad_id)
        values = fn(ids, mask).float().cpu().numpy()
        for i, value in zip(batch, values, strict=True):
            out[i] = value
    return np.stack(out) if out else np.zeros((0, 0), dtype=np.float32)


def predict_proba(
    tokenizer: PreTrainedTokenizerBase,
    model: PooledClassifier,
    texts: Sequence[str],
    *,
    max_length: int,
    batch_size: int = 128,
) -> np.ndarray:
    """Class probabilities, shape (n, k), in the order of ``texts``."""
    return probabilities(_score(model, model, tokenizer, texts, max_length, batch_size))


def predict_with_features(
    tokenizer: PreTrainedTokenizerBase,
    model: PooledClassifier,
    texts: Sequence[str],
    *,
    max_length: int,
    batch_size: int = 128,
) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities (n, k) and the pooled features the head consumed (n, hidden),
    from one forward pass, in the order of ``texts``."""
    out = _score(model, model.features_and_logits, tokenizer, texts, max_length, batch_size)
    return split_features(out, model)


def split_features(out: np.ndarray, model: PooledClassifier) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and features from :meth:`PooledClassifier.features_and_logits`'s
    rows (as :func:`run_batches` stacks them)."""
    hidden = model.head.in_features
    if out.size == 0:
        return (
            np.zeros((0, model.head.out_features), np.float32),
            np.zeros((0, hidden), np.float32),
        )
    return probabilities(np.ascontiguousarray(out[:, hidden:])), out[:, :hidden]


def probabilities(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis of logits from :func:`run_batches`."""
    return torch.softmax(torch.from_numpy(logits), dim=-1).numpy()


def embed_texts(
    tokenizer: PreTrainedTokenizerBase,
    model: PooledClassifier,
    texts: Sequence[str],
    *,
    max_length: int,
    batch_size: int = 128,
) -> np.ndarray:
    """Pooled (normalized) sentence embeddings, shape (n, hidden)."""
    return _score(model, model.embed, tokenizer, texts, max_length, batch_size)


def _score(model, fn, tokenizer, texts, max_length: int, batch_size: int) -> np.ndarray:
    model.eval()
    encoded = tokenize(tokenizer, texts, max_length)
    return run_batches(fn, encoded, tokenizer.pad_token_id, batch_size)
