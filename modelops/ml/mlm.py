"""Domain-adaptive pretraining: continue masked-language-model training of a base encoder
on unlabelled in-domain texts, and save the encoder as a new base model directory.

The model is ``AutoModelForMaskedLM`` over the base's own weights; the masking is
``DataCollatorForLanguageModeling`` (15% of tokens: 80% ``[MASK]``, 10% random, 10% kept).
Sentence encoders such as all-MiniLM-L6-v2 ship without their MLM head: transformers then
creates one whose decoder is tied to the word embeddings (``tie_word_embeddings``) and whose
small transform layer (dense + LayerNorm) and bias start freshly initialised; the result
records ``head: "fresh"`` and the names of those weights. A base that ships its head
(``head: "pretrained"``) continues from it. Only the encoder is saved, into the same layout
as the parent (its pooler and every weight the MLM model lacks are kept from the parent), so
the new base loads wherever the parent did.

The loop is plain torch, seeded, on a fixed thread count, batches padded to their own
length; a held-out slice of the texts gives the masked-LM loss before and after (the same
masks both times), so the lineage shows whether the texts were learnt.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from modelops.config.errors import InputError
from modelops.config.progress import Emit
from modelops.ml.model import PICKLE_SUFFIXES
from modelops.ml.training import deterministic

log = logging.getLogger(__name__)
MIN_TEXTS = 32


@dataclass(frozen=True)
class MlmSettings:
    steps: int = 300
    batch_size: int = 32
    learning_rate: float = 5e-5
    max_length: int = 64
    mlm_probability: float = 0.15
    warmup_ratio: float = 0.06
    seed: int = 13
    eval_fraction: float = 0.1

    def check(self) -> None:
        for name in ("steps", "batch_size", "max_length"):
            if getattr(self, name) <= 0:
                raise InputError(None, name, f"must be > 0, not {getattr(self, name)}")
        if not 0 < self.mlm_probability < 1:
            raise InputError(None, "mlm_probability", "must be between 0 and 1")
        if not 0 < self.learning_rate < 1:
            raise InputError(None, "learning_rate", "must be between 0 and 1")


@dataclass
class MlmResult:
    directory: Path
    steps: int
    train_texts: int
    eval_texts: int
    eval_loss_before: float
    eval_loss_after: float
    seconds: float
    head: str
    fresh_head_weights: list[str] = field(default_factory=list)


def continue_mlm(
    base_path: Path,
    texts: list[str],
    out_dir: Path,
    settings: MlmSettings,
    *,
    threads: int = 1,
    emit: Emit = log.info,
    progress_seconds: float = 30.0,
) -> MlmResult:
    """Continue masked-LM training of the base at ``base_path`` on ``texts``; write the
    adapted encoder and the tokenizer to ``out_dir``."""
    from transformers import (
        AutoModel,
        AutoModelForMaskedLM,
        AutoTokenizer,
        DataCollatorForLanguageModeling,
        get_linear_schedule_with_warmup,
    )
    from transformers.utils import logging as hf_logging

    settings.check()
    hf_logging.disable_progress_bar()
    texts = sorted({t.strip() for t in texts if isinstance(t, str) and t.strip()})
    if len(texts) < MIN_TEXTS:
        raise InputError(
            None,
            "texts",
            f"{len(texts)} distinct non-empty texts; domain adaptation needs at least {MIN_TEXTS}",
        )
    if not any(Path(base_path).glob("*.safetensors")):
        raise InputError(base_path, None, "no safetensors weights (pickled weights refused)")
    started = time.perf_counter()
    with deterministic(settings.seed, threads):
        tokenizer = AutoTokenizer.from_pretrained(str(base_path), local_files_only=True)
        if tokenizer.mask_token is None:
            raise InputError(
                base_path,
                "tokenizer",
                "has no mask token: masked-LM training is not possible with it",
            )
        model, info = AutoModelForMaskedLM.from_pretrained(
            str(base_path),
            local_files_only=True,
            use_safetensors=True,
            output_loading_info=True,
        )
        fresh = sorted(info.get("missing_keys", []))
        head = "fresh" if fresh else "pretrained"
        _start_fresh_head(model, set(fresh))
        emit(
            f"masked-LM model of {type(model).__name__}: head {head}"
            + (
                f" ({len(fresh)} weights initialised here, decoder tied to the embeddings)"
                if fresh
                else ""
            )
        )
        rng = np.random.default_rng(settings.seed)
        order = rng.permutation(len(texts))
        n_eval = max(1, min(256, int(len(texts) * settings.eval_fraction)))
        eval_texts = [texts[i] for i in order[:n_eval]]
        train_texts = [texts[i] for i in order[n_eval:]]
        encode = tokenizer(
            train_texts,
            truncation=True,
            max_length=settings.max_length,
            return_special_tokens_mask=True,
        )
        train = [{k: encode[k][i] for k in encode} for i in range(len(train_texts))]
        collator = DataCollatorForLanguageModeling(
            tokenizer, mlm=True, mlm_probability=settings.mlm_probability, return_tensors="pt"
        )
        eval_batches = _eval_batches(tokenizer, collator, eval_texts, settings)
        before = _eval_loss(model, eval_batches)
        emit(f"masked-LM loss on {n_eval} held-out texts before: {before:.4f}")
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=settings.learning_rate, weight_decay=0.01
        )
        scheduler = get_linear_schedule_with_warmup(
            optimizer, int(settings.steps * settings.warmup_ratio), settings.steps
        )
        model.train()
        loop_started = last = time.perf_counter()
        loss_sum = 0.0
        stream = _batch_indices(rng, len(train), settings.batch_size)
        for step in range(1, settings.steps + 1):
            loss = model(**collator([train[i] for i in next(stream)])).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += loss.item()
            now = time.perf_counter()
            if now - last >= progress_seconds or step == settings.steps:
                eta = (settings.steps - step) * (now - loop_started) / step
                emit(
                    f"masked-LM step {step}/{settings.steps}, loss {loss_sum / step:.4f}, "
                    f"ETA {eta:.0f} s"
                )
                last = now
        after = _eval_loss(model, eval_batches)
        emit(f"masked-LM loss on {n_eval} held-out texts after {settings.steps} steps: {after:.4f}")
        encoder = AutoModel.from_pretrained(
            str(base_path), local_files_only=True, use_safetensors=True
        )
        adapted = model.base_model.state_dict()
        unexpected = encoder.load_state_dict(adapted, strict=False).unexpected_keys
        if unexpected:  # pragma: no cover - a model class whose encoder differs
            raise InputError(
                base_path, None, f"masked-LM encoder weights do not fit the base: {unexpected[:5]}"
            )
        out_dir.mkdir(parents=True, exist_ok=True)
        encoder.save_pretrained(str(out_dir))
        tokenizer.save_pretrained(str(out_dir))
    for stray in out_dir.iterdir():  # safetensors only
        if stray.suffix in PICKLE_SUFFIXES:
            stray.unlink()
    return MlmResult(
        out_dir,
        settings.steps,
        len(train_texts),
        n_eval,
        before,
        after,
        time.perf_counter() - started,
        head,
        fresh,
    )


@torch.no_grad()
def _start_fresh_head(model, fresh: set[str]) -> None:
    """A fresh head's transform starts as the identity (dense = I, bias 0), so the first
    predictions already come from the tied embeddings rather than a random projection."""
    for name, param in model.named_parameters():
        if name not in fresh:
            continue
        if name.endswith("dense.weight") and param.shape[0] == param.shape[1]:
            param.copy_(torch.eye(param.shape[0], dtype=param.dtype))
        elif name.endswith("bias"):
            param.zero_()


def _batch_indices(rng: np.random.Generator, n: int, size: int):
    """Batches of row indices, epoch after epoch, each epoch in a fresh seeded order."""
    while True:
        perm = rng.permutation(n)
        for start in range(0, n, size):
            yield perm[start : start + size].tolist()


def _eval_batches(tokenizer, collator, texts: list[str], settings: MlmSettings) -> list[dict]:
    """Masked batches of the held-out texts, masked once (the same masks before/after)."""
    encode = tokenizer(
        texts, truncation=True, max_length=settings.max_length, return_special_tokens_mask=True
    )
    rows = [{k: encode[k][i] for k in encode} for i in range(len(texts))]
    state = torch.get_rng_state()
    torch.manual_seed(settings.seed + 1)
    batches = [
        collator(rows[i : i + settings.batch_size])
        for i in range(0, len(rows), settings.batch_size)
    ]
    torch.set_rng_state(state)
    return batches


@torch.no_grad()
def _eval_loss(model, batches: list[dict]) -> float:
    model.eval()
    total, count = 0.0, 0
    for batch in batches:
        masked = int((batch["labels"] != -100).sum())
        if masked:
            total += float(model(**batch).loss) * masked
            count += masked
    model.train()
    return total / count if count else math.nan
