"""The training loop of ``modelops.ml.training``: batches grouped by length in a seeded
order, the model selection on the validation split (``modelops.ml.selection``), and
checkpoints to resume a killed run (``modelops.ml.checkpoint``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score

from modelops.config.progress import Emit
from modelops.config.recipe import TrainingSettings
from modelops.ml.checkpoint import Checkpointer, optimizer_tensors, restore_optimizer
from modelops.ml.distill import UNLABELLED, SoftTargets
from modelops.ml.model import PooledClassifier, collate, run_batches, tokenize
from modelops.ml.schedule import grouped_batches, optimizer_and_schedule
from modelops.ml.selection import Selector

OnEpoch = Callable[[int, PooledClassifier], None]
"""Called after each epoch with the model as trained so far (benchmarks score it; the
training never reads what it does)."""


@dataclass(frozen=True)
class FitJob:
    """What the training loop fits: the model, the tokenized train and validation rows with
    their labels, the padding id, the settings and the starting point's validation logits
    (None without a validation split)."""

    model: PooledClassifier
    train_ids: list[list[int]]
    train_labels: torch.Tensor
    validation_ids: list[list[int]]
    validation_labels: np.ndarray
    pad: int
    settings: TrainingSettings
    start_logits: np.ndarray | None
    soft: SoftTargets | None = None
    """A teacher's soft labels of the training rows (``modelops.ml.distill``); None: the
    plain cross-entropy."""

    def with_soft_targets(self, soft: SoftTargets, tokenizer, max_length: int) -> FitJob:
        """This job with the production texts appended to its training rows (label
        :data:`~modelops.ml.distill.UNLABELLED`) and the soft targets the loss reads."""
        extra = tokenize(tokenizer, list(soft.production_texts), max_length)
        rows = len(self.train_ids) + len(extra)
        if soft.log_probs.shape[0] != rows:
            raise ValueError(
                f"soft labels: {soft.log_probs.shape[0]} rows for {len(self.train_ids)} "
                f"training and {len(extra)} production texts"
            )
        labels = torch.cat([self.train_labels, torch.full((len(extra),), UNLABELLED)])
        return replace(self, train_ids=[*self.train_ids, *extra], train_labels=labels, soft=soft)


def fit(
    job: FitJob,
    emit: Emit,
    checkpointer: Checkpointer | None = None,
    on_epoch: OnEpoch | None = None,
) -> tuple[list[dict], dict | None]:
    """Train ``job.model`` in place; the history of its epochs and the selection report
    (None without selection; see ``modelops.ml.selection``).

    With a ``checkpointer`` the loop saves its whole state every ``every_steps`` steps and
    at each epoch's end, and first resumes from a checkpoint it finds, so a killed run
    continues where it stopped and ends with the same weights as an uninterrupted one.
    """
    loop = _Loop(job, emit, checkpointer)
    loop.start_selection()
    start_epoch, start_step, resumed_loss = loop.resume()
    for epoch in range(start_epoch, job.settings.epochs + 1):
        skip = start_step if epoch == start_epoch else 0
        record = loop.run_epoch(epoch, skip, resumed_loss if skip else (0.0, 0))
        if on_epoch is not None:
            on_epoch(epoch, job.model)
        loop.save(epoch + 1, 0, loop.rng.bit_generator.state, 0.0, 0)
        emit(
            f"epoch {epoch}/{job.settings.epochs}: loss {record['train_loss']:.4f}, "
            f"val accuracy {record.get('validation_accuracy', float('nan')):.4f}, "
            f"{record['samples_per_second']:.1f} samples/s"
        )
    return loop.finish()


class _Loop:
    """The state of one training loop: optimizer, schedule, batch order, history and the
    selection's candidates."""

    def __init__(self, job: FitJob, emit: Emit, checkpointer: Checkpointer | None):
        self.job, self.emit, self.checkpointer = job, emit, checkpointer
        model, settings = job.model, job.settings
        self.steps_per_epoch = -(-len(job.train_ids) // settings.batch_size)
        total = self.steps_per_epoch * settings.epochs
        self.optimizer, self.scheduler = optimizer_and_schedule(model, settings, total)
        self.lengths = [len(e) for e in job.train_ids]
        self.rng = np.random.default_rng(settings.seed)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        emit(
            f"training {trainable} parameters on {len(job.train_ids)} rows, "
            f"{settings.epochs} epochs"
        )
        self.history: list[dict] = []
        self.names = [n for n, p in model.named_parameters() if p.requires_grad]
        self.selector: Selector | None = None
        self.shape = {"total_steps": total, "trainable": self.names}

    def validation_predictions(self, logits: np.ndarray | None = None) -> np.ndarray:
        if logits is None:
            self.job.model.eval()
            logits = run_batches(
                self.job.model,
                self.job.validation_ids,
                self.job.pad,
                self.job.settings.eval_batch_size,
            )
        return logits.argmax(1)

    def snapshot(self) -> dict[str, torch.Tensor]:
        state = self.job.model.state_dict()
        return {n: state[n].detach().clone() for n in self.names}

    def start_selection(self) -> None:
        """Model selection on the validation split: the starting point (the probe head with
        LoRA at zero, or the warm start) competes with every epoch."""
        job, settings = self.job, self.job.settings
        if not (len(job.validation_ids) and settings.select_best):
            return
        self.selector = Selector(
            job.validation_labels, settings.selection, settings.selection_confidence
        )
        self.selector.add(0, self.validation_predictions(job.start_logits), self.snapshot())
        accuracy, macro_f1 = self.selector.scores(0)
        self.emit(f"epoch 0 (starting point): val accuracy {accuracy:.4f}, macro-F1 {macro_f1:.4f}")

    def save(self, epoch: int, step: int, epoch_rng: dict, loss_sum: float, seen: int) -> None:
        if self.checkpointer is None:
            return
        opt_tensors, groups = optimizer_tensors(self.optimizer)
        tensors = {f"model/{k}": v for k, v in self.snapshot().items()}
        tensors.update(opt_tensors)
        tensors["torch_rng"] = torch.get_rng_state()
        if self.selector is not None:
            tensors.update(self.selector.state_tensors())
        self.checkpointer.save(
            tensors,
            {
                **self.shape,
                "epoch": epoch,
                "step": step,
                "epoch_rng": epoch_rng,
                "loss_sum": loss_sum,
                "seen": seen,
                "history": self.history,
                "param_groups": groups,
                "scheduler": self.scheduler.state_dict(),
            },
        )

    def resume(self) -> tuple[int, int, tuple[float, int]]:
        """Where the loop starts: (epoch, step, (loss sum, rows seen) of that epoch); from
        the checkpoint when there is one."""
        checkpointer = self.checkpointer
        state = checkpointer.load(self.shape, self.emit) if checkpointer is not None else None
        if state is None:
            return 1, 0, (0.0, 0)
        tensors, info = state
        self.job.model.load_state_dict({n: tensors[f"model/{n}"] for n in self.names}, strict=False)
        restore_optimizer(self.optimizer, tensors, info["param_groups"])
        self.scheduler.load_state_dict(info["scheduler"])
        torch.set_rng_state(tensors["torch_rng"])
        self.rng.bit_generator.state = info["epoch_rng"]
        self.history = info["history"]
        if self.selector is not None:
            self.selector.restore(tensors, self.names)
        self.emit(
            f"resuming from checkpoint {checkpointer.directory}: epoch {info['epoch']}, "
            f"step {info['step']}/{self.steps_per_epoch}"
        )
        return info["epoch"], info["step"], (info["loss_sum"], info["seen"])

    def run_epoch(self, epoch: int, skip: int, resumed_loss: tuple[float, int]) -> dict:
        """One epoch, its first ``skip`` steps already done (a resumed run); returns its
        history record, appended to the history."""
        job, settings, model = self.job, self.job.settings, self.job.model
        model.train()
        started = time.perf_counter()
        epoch_rng = self.rng.bit_generator.state
        loss_sum, seen = resumed_loss
        batches = grouped_batches(self.lengths, settings.batch_size, self.rng)
        for step, batch in enumerate(batches, 1):
            if step <= skip:
                continue
            loss_sum, seen = self._step(batch, loss_sum, seen)
            if step % 50 == 0:
                self.emit(
                    f"epoch {epoch} step {step}/{self.steps_per_epoch} loss {loss_sum / seen:.4f}"
                )
            if (
                self.checkpointer is not None
                and step % self.checkpointer.every_steps == 0
                and step < self.steps_per_epoch
            ):
                self.save(epoch, step, epoch_rng, loss_sum, seen)
                self.emit(f"checkpoint saved: epoch {epoch} step {step}/{self.steps_per_epoch}")
        seconds = time.perf_counter() - started
        record = {
            "epoch": epoch,
            "train_loss": loss_sum / max(seen, 1),
            "seconds": seconds,
            "samples_per_second": seen / max(seconds, 1e-9),
        }
        if len(job.validation_ids):
            pred = self.validation_predictions()
            record["validation_accuracy"] = float(accuracy_score(job.validation_labels, pred))
            record["validation_macro_f1"] = float(
                f1_score(job.validation_labels, pred, average="macro", zero_division=0)
            )
            if self.selector is not None:
                self.selector.add(epoch, pred, self.snapshot())
        self.history.append(record)
        return record

    def _step(self, batch: list[int], loss_sum: float, seen: int) -> tuple[float, int]:
        """One optimizer step on ``batch``; the running loss sum and row count."""
        job = self.job
        ids, mask = collate([job.train_ids[i] for i in batch], job.pad)
        logits, labels = job.model(ids, mask), job.train_labels[batch]
        smoothing = job.settings.label_smoothing
        if job.soft is None:
            loss = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=smoothing)
        else:
            loss = job.soft.loss(logits, labels, batch, smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return loss_sum + loss.item() * len(batch), seen + len(batch)

    def finish(self) -> tuple[list[dict], dict | None]:
        """The kept weights loaded back (with selection); the history and the report."""
        if self.selector is None:
            return self.history, None
        kept, report = self.selector.choose()
        self.job.model.load_state_dict(self.selector.weights[kept], strict=False)
        for record in self.history:
            record["selected"] = record["epoch"] == kept
        self.emit(f"kept epoch {kept}: {report['reason']}")
        return self.history, report
