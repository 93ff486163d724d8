"""The contrastive stage before the head (``training.contrastive``), after SetFit
(Tunstall et al. 2022): pairs of training rows drawn from the labels, a positive pair
(same label) pulled towards cosine similarity 1 and a negative pair (different labels)
pushed below ``margin``, on the pooled embeddings the head will read. It updates the
trainable encoder weights (LoRA or, with ``adapter.method: full``, all of them); the probe
head is then fitted on the new embeddings and the normal training follows
(``modelops.ml.training``).

Loss per pair, ``c`` the cosine similarity of the two pooled embeddings:
``(1 - c)^2`` for a positive pair, ``max(0, c - margin)^2`` for a negative one (with
``margin`` 0 a negative pair costs nothing once the two are orthogonal or further apart).

Deterministic under the recipe's seed: the pairs come from a numpy generator seeded with
it (each row gets ``pairs_per_row`` partners, ``positive_fraction`` of them of its own
label; a row alone in its label gets only negatives), their order per epoch from the same
generator, dropout from torch's generator (seeded by ``training.deterministic``). Each step
embeds the distinct rows of its pairs once, padded to their longest. Progress (pairs done
of the total, time left) is logged about every 30 seconds. The stage is not checkpointed:
a resumed training runs it again and, deterministic, reaches the same weights.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from modelops.config.progress import Emit
from modelops.config.recipe import ContrastiveSettings, TrainingSettings
from modelops.ml.model import PooledClassifier, collate
from modelops.ml.schedule import optimizer_and_schedule

PROGRESS_SECONDS = 30.0
PAIR_SEED_OFFSET = 7919
"""Added to the recipe seed for the pairs' generator, so the pairs do not repeat the draws
of the main training's batch order (seeded with the seed itself)."""


def sample_pairs(
    labels: np.ndarray, pairs_per_row: int, positive_fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """Pairs ``(a, b, same)`` of row indices of ``labels``: for every row
    ``round(pairs_per_row * positive_fraction)`` partners of its own label (none when it is
    the only row of it) and the rest of other labels (none when every row has one label)."""
    labels = np.asarray(labels)
    n = len(labels)
    order = np.argsort(labels, kind="stable")
    values, starts, counts = np.unique(labels[order], return_index=True, return_counts=True)
    group = np.searchsorted(values, labels)
    start, count = starts[group], counts[group]
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    n_pos = int(round(pairs_per_row * positive_fraction))
    out = []
    for k in range(pairs_per_row):
        if k < n_pos:
            rows = np.flatnonzero(count > 1)
            pick = rng.integers(0, count[rows] - 1)
            pick += pick >= rank[rows] - start[rows]  # skip the row itself
            out.append(np.stack([rows, order[start[rows] + pick], np.ones_like(rows)], 1))
        else:
            rows = np.flatnonzero(count < n)
            pick = rng.integers(0, n - count[rows])
            pick += np.where(pick >= start[rows], count[rows], 0)  # skip the row's label
            out.append(np.stack([rows, order[pick], np.zeros_like(rows)], 1))
    return np.concatenate(out) if out else np.zeros((0, 3), dtype=np.int64)


def pair_loss(embeddings: torch.Tensor, pairs: torch.Tensor, margin: float) -> torch.Tensor:
    """Mean loss of ``pairs`` (rows of ``(a, b, same)`` indexing ``embeddings``)."""
    a = torch.nn.functional.normalize(embeddings[pairs[:, 0]], dim=-1)
    b = torch.nn.functional.normalize(embeddings[pairs[:, 1]], dim=-1)
    cosine = (a * b).sum(-1)
    same = pairs[:, 2].bool()
    loss = torch.where(same, (1 - cosine) ** 2, torch.relu(cosine - margin) ** 2)
    return loss.mean()


@dataclass(frozen=True)
class ContrastiveJob:
    """What the stage trains: the model, the tokenized train rows and their label indices,
    the padding id and the training settings (``settings.contrastive`` set)."""

    model: PooledClassifier
    train_ids: list[list[int]]
    train_labels: np.ndarray
    pad: int
    settings: TrainingSettings


def run_contrastive(job: ContrastiveJob, emit: Emit) -> dict:
    """Train ``job.model``'s encoder on label pairs, in place; a summary (pairs, steps,
    each epoch's mean loss, that of the first and the last tenth of the steps, seconds)."""
    stage: ContrastiveSettings = job.settings.contrastive
    rng = np.random.default_rng(job.settings.seed + PAIR_SEED_OFFSET)
    pairs = sample_pairs(job.train_labels, stage.pairs_per_row, stage.positive_fraction, rng)
    batch = stage.batch_size or job.settings.batch_size
    steps_per_epoch = -(-len(pairs) // batch)
    total = steps_per_epoch * stage.epochs
    stage_settings = job.settings.model_copy(
        update={"learning_rate": stage.learning_rate or job.settings.learning_rate}
    )
    optimizer, scheduler = optimizer_and_schedule(job.model, stage_settings, max(total, 1))
    emit(
        f"contrastive stage: {len(pairs)} pairs ({int(pairs[:, 2].sum())} positive) from "
        f"{len(job.train_ids)} rows, {stage.epochs} epochs of {steps_per_epoch} steps"
    )
    progress = _Progress(total, emit)
    steps: list[float] = []
    job.model.train()
    for _ in range(stage.epochs):
        order = pairs[rng.permutation(len(pairs))]
        for i in range(0, len(order), batch):
            steps.append(pair_step(job, order[i : i + batch], stage.margin, optimizer, scheduler))
            progress.step()
    tenth = max(len(steps) // 10, 1)
    first, last = float(np.mean(steps[:tenth] or [0])), float(np.mean(steps[-tenth:] or [0]))
    emit(f"contrastive stage done: mean pair loss {first:.4f} (first tenth) -> {last:.4f}")
    return {
        "pairs": len(pairs),
        "positive_pairs": int(pairs[:, 2].sum()),
        "steps": total,
        "epoch_losses": [
            float(np.mean(steps[e * steps_per_epoch : (e + 1) * steps_per_epoch] or [0]))
            for e in range(stage.epochs)
        ],
        "loss_first_tenth": first,
        "loss_last_tenth": last,
        "seconds": progress.elapsed(),
    }


def pair_step(job: ContrastiveJob, pairs: np.ndarray, margin: float, optimizer, scheduler) -> float:
    """One optimizer step on a batch of pairs: the distinct rows embedded once."""
    rows, inverse = np.unique(pairs[:, :2], return_inverse=True)
    ids, mask = collate([job.train_ids[r] for r in rows], job.pad)
    embeddings = job.model.embed(ids, mask)
    index = torch.from_numpy(
        np.concatenate([inverse.reshape(-1, 2), pairs[:, 2:]], axis=1).astype(np.int64)
    )
    loss = pair_loss(embeddings, index, margin)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()
    return float(loss.item())


class _Progress:
    """Logs ``done/total`` steps and the time left about every ``PROGRESS_SECONDS``."""

    def __init__(self, total: int, emit: Emit):
        self.total, self.emit, self.done = total, emit, 0
        self.started = self.last = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def step(self) -> None:
        self.done += 1
        now = time.perf_counter()
        if now - self.last >= PROGRESS_SECONDS and self.done < self.total:
            self.last = now
            left = self.elapsed() / self.done * (self.total - self.done)
            self.emit(f"contrastive stage: step {self.done}/{self.total}, about {left:.0f} s left")
