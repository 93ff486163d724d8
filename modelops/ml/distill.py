"""Distillation: a student trained on a teacher's soft labels (docs/concepts.md#distillation).

The teacher's log-probabilities are computed once over the student's training texts and
the unlabelled production texts (:func:`teacher_log_probs`); the training loop
(``modelops.ml.fit``) then minimises, per batch,

    alpha * T^2 * mean_rows KL(softmax(t / T) || softmax(s / T))
    + (1 - alpha) * mean_labelled_rows CE(s, true label)

where ``t`` are the teacher's log-probabilities (logits up to a constant per row), ``s``
the student's logits and ``T`` the temperature; production rows carry no label (-1) and
count in the KL term only. ``alpha == 0`` is the plain cross-entropy of the labelled rows.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.nn import functional

from modelops.config.progress import Emit
from modelops.ml.model import PooledClassifier, run_batches, tokenize

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

UNLABELLED = -1
"""The label of a production row in the training tensors."""
PROGRESS_SECONDS = 30.0


@dataclass(frozen=True)
class SoftTargets:
    """The teacher's log-probabilities of every row the student trains on: the training
    split's rows first (in the dataset's order), then ``production_texts``; columns in the
    student's label order."""

    log_probs: torch.Tensor
    production_texts: tuple[str, ...]
    temperature: float
    alpha: float

    def loss(
        self,
        logits: torch.Tensor,
        labels: torch.Tensor,
        rows: Sequence[int],
        label_smoothing: float = 0.0,
    ) -> torch.Tensor:
        """The distillation loss of a batch: ``rows`` index the soft targets."""
        return distillation_loss(
            logits,
            labels,
            self.log_probs[list(rows)],
            temperature=self.temperature,
            alpha=self.alpha,
            label_smoothing=label_smoothing,
        )


def distillation_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    teacher_log_probs: torch.Tensor,
    *,
    temperature: float,
    alpha: float,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """``alpha * T^2 * KL(teacher_T || student_T)`` averaged over the rows, plus
    ``(1 - alpha) * CE`` averaged over the rows with a label (``labels >= 0``)."""
    loss = logits.sum() * 0.0  # a batch with nothing to learn still backpropagates
    if alpha > 0:
        student = functional.log_softmax(logits / temperature, dim=-1)
        teacher = functional.log_softmax(teacher_log_probs / temperature, dim=-1)
        kl = (teacher.exp() * (teacher - student)).sum(-1)
        loss = alpha * temperature**2 * kl.mean()
    labelled = labels >= 0
    if alpha < 1 and bool(labelled.any()):
        ce = functional.cross_entropy(
            logits[labelled], labels[labelled], label_smoothing=label_smoothing
        )
        loss = ce if alpha == 0 else loss + (1 - alpha) * ce
    return loss


def teacher_log_probs(
    tokenizer: PreTrainedTokenizerBase,
    model: PooledClassifier,
    texts: Sequence[str],
    *,
    max_length: int,
    batch_size: int,
    emit: Emit,
    every_seconds: float = PROGRESS_SECONDS,
) -> np.ndarray:
    """The teacher's log-probabilities of ``texts`` (n, labels), in chunks of a few
    batches, logging done/total and the time left about every ``every_seconds``."""
    model.eval()
    chunk, total = batch_size * 8, len(texts)
    parts: list[np.ndarray] = []
    started = last = time.perf_counter()
    for start in range(0, total, chunk):
        encoded = tokenize(tokenizer, list(texts[start : start + chunk]), max_length)
        logits = run_batches(model, encoded, tokenizer.pad_token_id, batch_size)
        parts.append(functional.log_softmax(torch.from_numpy(logits), dim=-1).numpy())
        done, now = min(start + chunk, total), time.perf_counter()
        if now - last >= every_seconds or done == total:
            left = (now - started) / done * (total - done)
            emit(f"teacher soft labels: {done}/{total} texts, about {left:.0f} s left")
            last = now
    if not parts:
        return np.zeros((0, model.head.out_features), dtype=np.float32)
    return np.concatenate(parts).astype(np.float32, copy=False)
