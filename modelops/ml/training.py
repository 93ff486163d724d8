"""LoRA fine-tuning of a pooled classifier, deterministic for a given lineage.

The loop is plain torch: batches are grouped by length and padded to their own
longest sequence (where the speed is on CPU), the order comes from a seeded
generator, and torch runs with deterministic algorithms on a recorded thread count.
The head starts from a linear probe on frozen embeddings, which is also the baseline
the adapter must beat.

A warm start (incremental retraining) continues from an earlier adapter. Its head rows
for the labels that adapter was trained on are kept; rows for labels it never saw (new
intents that arrived with feedback) are fitted first on the warm encoder's frozen
embeddings with the kept rows held fixed, by the same L2-regularised softmax objective
as the probe, rows weighted so the replay sample stands for the data it was drawn from.
Without that step a new label starts at a bias far below the others and the short
incremental run does not lift it (measured on Banking77: 0.0 accuracy on 10 new intents).
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score

from modelops.config.fingerprint import file_manifest, sha256_manifest
from modelops.config.progress import Emit
from modelops.config.recipe import Recipe, TrainingSettings
from modelops.domain.dataset import PreparedDataset, encode_labels
from modelops.ml.architectures import lora_target_modules
from modelops.ml.catalog import ResolvedBase
from modelops.ml.checkpoint import Checkpointer, optimizer_tensors, restore_optimizer
from modelops.ml.model import (
    WEIGHT_FILES,
    PooledClassifier,
    collate,
    load_base,
    load_classifier,
    run_batches,
    save_head,
    tokenize,
)
from modelops.ml.probe import extend_head, fit_probe, init_head
from modelops.ml.schedule import grouped_batches, optimizer_and_schedule
from modelops.ml.selection import Selector
from modelops.ml.warm_start import WarmStart

log = logging.getLogger(__name__)
OnEpoch = Callable[[int, PooledClassifier], None]
"""Called after each epoch with the model as trained so far (benchmarks score it; the
training never reads what it does)."""
BASELINE_FILE = "baseline.json"
HISTORY_FILE = "history.json"


@dataclass(frozen=True)
class _FitJob:
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


@dataclass
class TrainingResult:
    directory: Path
    weights_sha256: str
    files: dict[str, str]
    history: list[dict]
    baseline: dict
    seconds: float
    samples_per_second: float
    torch_threads: int
    train_rows: int
    selected_epoch: int = 0
    """The epoch whose weights were kept (0: the starting point, see ``select_best``)."""
    lora_nonzero: bool = True
    """Whether the kept LoRA weights differ from zero (epoch 0 of a full training: no)."""
    blas_threads: int = 1
    """The BLAS threads of the probe fit (pinned like torch's)."""
    extra: dict = field(default_factory=dict)
    selection: dict | None = None
    """What was kept and why (``modelops.ml.selection``); None without selection."""


@contextlib.contextmanager
def deterministic(seed: int, threads: int, blas_threads: int | None = None) -> Iterator[None]:
    """Seed every generator, use deterministic kernels and fixed thread counts: torch's
    and the BLAS libraries' (numpy, scikit-learn's probe fit; ``blas_threads``, default
    ``threads``), so that a fresh process with the recorded counts reproduces the weights."""
    from threadpoolctl import threadpool_limits

    previous_threads = torch.get_num_threads()
    previous_det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    try:
        with threadpool_limits(limits=blas_threads or threads):
            yield
    finally:
        torch.use_deterministic_algorithms(previous_det)
        torch.set_num_threads(previous_threads)


def weights_digest(directory: Path) -> tuple[str, dict[str, str]]:
    """sha256 of the weight files only (the manifest and reports vary by time)."""
    files = file_manifest(directory)
    weights = {name: files[name] for name in WEIGHT_FILES}
    return sha256_manifest(weights), files


def _frozen_features(model: PooledClassifier, enc: dict, pad: int,
                     batch: int) -> dict[str, np.ndarray]:
    """Every split embedded by the base alone (the warm adapter's LoRA switched off): what
    the baseline probe is fitted on with a warm start too, so ``beats_baseline`` always asks
    whether adaptation beats the base. PEFT's ``disable_adapter`` spares a second load."""
    with model.encoder.disable_adapter():
        return {k: run_batches(model.embed, v, pad, batch) for k, v in enc.items()}


def train_classifier(
    *,
    recipe: Recipe,
    base: ResolvedBase,
    dataset: PreparedDataset,
    out_dir: Path,
    threads: int,
    emit: Emit = log.info,
    warm_start: WarmStart | Path | None = None,
    checkpointer: Checkpointer | None = None,
    blas_threads: int | None = None,
    on_epoch: OnEpoch | None = None,
) -> TrainingResult:
    """Fit a LoRA adapter and head on the dataset's train split; write ``out_dir``.

    With a ``checkpointer`` a run killed mid-epoch resumes from its last checkpoint (see
    ``modelops.ml.checkpoint``); the caller clears it once the adapter is stored.
    """
    settings = recipe.training
    labels = dataset.labels
    out_dir.mkdir(parents=True, exist_ok=True)
    train, validation, test = (dataset.split(s) for s in ("train", "validation", "test"))
    y_train = torch.from_numpy(encode_labels(train, labels))
    started = time.perf_counter()
    blas_threads = blas_threads or threads
    with deterministic(settings.seed, threads, blas_threads):
        if warm_start is None:
            tokenizer, encoder = load_base(base.path)
            pooling = recipe.head.pooling or base.entry.pooling
            model = PooledClassifier(encoder, len(labels), pooling)
            what = "the frozen base"
        else:
            if isinstance(warm_start, Path):
                warm_start = WarmStart(warm_start, frozenset(labels))
            tokenizer, model, warm_labels = load_classifier(warm_start.path, base.path,
                                                            trainable=True)
            if warm_labels != labels:
                raise ValueError("warm start adapter has a different label set")
            what = "the warm start's frozen encoder"
        enc = {
            name: tokenize(tokenizer, frame["text"].tolist(), settings.max_length)
            for name, frame in (("train", train), ("validation", validation), ("test", test))
        }
        pad = tokenizer.pad_token_id
        # One pass over every split gives the probe baseline, the head start and the
        # starting point's validation score.
        emit(f"embedding {len(train)} train rows with {what} for the linear probe")
        model.eval()
        feats = {
            k: run_batches(model.embed, v, pad, settings.eval_batch_size) for k, v in enc.items()
        }
        probe, baseline = fit_probe(recipe, feats, dataset, labels)
        if warm_start is not None:  # the baseline stays the probe on the frozen base
            warm_probe = baseline["test"]
            frozen = _frozen_features(model, enc, pad, settings.eval_batch_size)
            _, baseline = fit_probe(recipe, frozen, dataset, labels)
            baseline["warm_start_probe_test"] = {k: warm_probe[k]
                                                 for k in ("accuracy", "macro_f1")}
        emit(
            f"linear probe: validation accuracy {baseline['validation_accuracy']:.4f}, "
            f"test macro-F1 {baseline['test']['macro_f1']:.4f}"
        )
        if warm_start is not None:
            extend_head(model, train_feats=feats["train"], y_train=y_train, warm=warm_start,
                        labels=labels, recipe=recipe, emit=emit)
        else:
            model = _with_lora(model, recipe)
            if recipe.head.init == "probe":
                init_head(model, probe, len(labels))
        start = None
        if len(validation):
            with torch.no_grad():
                start = model.head(torch.from_numpy(feats["validation"])).numpy()
        job = _FitJob(model=model, train_ids=enc["train"], train_labels=y_train,
                      validation_ids=enc["validation"],
                      validation_labels=encode_labels(validation, labels), pad=pad,
                      settings=settings, start_logits=start)
        history, selection = _fit(job, emit, checkpointer, on_epoch)
        lora_nonzero = any(bool(p.detach().abs().max() > 0)
                           for n, p in model.named_parameters() if "lora_B" in n)
        model.encoder.save_pretrained(str(out_dir))
        save_head(model, labels, out_dir)
    seconds = time.perf_counter() - started
    (out_dir / BASELINE_FILE).write_text(json.dumps(baseline, indent=2) + "\n", encoding="utf-8")
    (out_dir / HISTORY_FILE).write_text(json.dumps(history, indent=2) + "\n", encoding="utf-8")
    digest, files = weights_digest(out_dir)
    train_seconds = sum(h["seconds"] for h in history)
    return TrainingResult(
        directory=out_dir,
        weights_sha256=digest,
        files=files,
        history=history,
        baseline=baseline,
        seconds=seconds,
        samples_per_second=len(train) * settings.epochs / max(train_seconds, 1e-9),
        torch_threads=threads,
        train_rows=len(train),
        selected_epoch=selected_epoch(history),
        lora_nonzero=lora_nonzero,
        blas_threads=blas_threads,
        selection=selection,
    )


def selected_epoch(history: list[dict]) -> int:
    """The kept epoch: the one marked ``selected``; 0 when ``select_best`` marked none
    (the starting point won); else the last epoch."""
    for record in history:
        if record.get("selected"):
            return int(record["epoch"])
    if history and "selected" in history[0]:
        return 0
    return int(history[-1]["epoch"]) if history else 0


def _with_lora(model: PooledClassifier, recipe: Recipe) -> PooledClassifier:
    from peft import LoraConfig, get_peft_model

    lora = recipe.adapter
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora_target_modules(model.encoder, lora.target_modules),
        bias="none",
    )
    model.encoder = get_peft_model(model.encoder, config)
    return model


def _fit(job: _FitJob, emit: Emit, checkpointer: Checkpointer | None = None,
         on_epoch: OnEpoch | None = None) -> tuple[list[dict], dict | None]:
    """The training loop: train ``job.model`` in place; the history of its epochs and the
    selection report (None without selection; see ``modelops.ml.selection``).

    With a ``checkpointer`` the loop saves its whole state every ``every_steps`` steps and
    at each epoch's end, and first resumes from a checkpoint it finds, so a killed run
    continues where it stopped and ends with the same weights as an uninterrupted one.
    """
    model, settings, pad = job.model, job.settings, job.pad
    enc_train, y_train, enc_val = job.train_ids, job.train_labels, job.validation_ids
    steps_per_epoch = -(-len(enc_train) // settings.batch_size)
    total = steps_per_epoch * settings.epochs
    optimizer, scheduler = optimizer_and_schedule(model, settings, total)
    lengths = [len(e) for e in enc_train]
    rng = np.random.default_rng(settings.seed)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    emit(f"training {trainable} parameters on {len(enc_train)} rows, {settings.epochs} epochs")
    history: list[dict] = []
    trainable_names = [n for n, p in model.named_parameters() if p.requires_grad]

    def validation_predictions(logits: np.ndarray | None = None) -> np.ndarray:
        if logits is None:
            model.eval()
            logits = run_batches(model, enc_val, pad, settings.eval_batch_size)
        return logits.argmax(1)

    def snapshot() -> dict[str, torch.Tensor]:
        state = model.state_dict()
        return {n: state[n].detach().clone() for n in trainable_names}

    # Model selection on the validation split: the starting point (the probe head with
    # LoRA at zero, or the warm start) competes with every epoch (modelops.ml.selection).
    selector = None
    if len(enc_val) and settings.select_best:
        selector = Selector(job.validation_labels, settings.selection,
                            settings.selection_confidence)
        selector.add(0, validation_predictions(job.start_logits), snapshot())
        accuracy, macro_f1 = selector.scores(0)
        emit(f"epoch 0 (starting point): val accuracy {accuracy:.4f}, macro-F1 {macro_f1:.4f}")
    shape = {"total_steps": total, "trainable": trainable_names}

    def save(epoch: int, step: int, epoch_rng: dict, loss_sum: float, seen: int) -> None:
        if checkpointer is None:
            return
        opt_tensors, groups = optimizer_tensors(optimizer)
        tensors = {f"model/{k}": v for k, v in snapshot().items()}
        tensors.update(opt_tensors)
        tensors["torch_rng"] = torch.get_rng_state()
        if selector is not None:
            tensors.update(selector.state_tensors())
        checkpointer.save(tensors, {
            **shape, "epoch": epoch, "step": step, "epoch_rng": epoch_rng,
            "loss_sum": loss_sum, "seen": seen, "history": history,
            "param_groups": groups, "scheduler": scheduler.state_dict(),
        })

    start_epoch, start_step, resumed_loss = 1, 0, (0.0, 0)
    state = checkpointer.load(shape, emit) if checkpointer is not None else None
    if state is not None:
        tensors, info = state
        model.load_state_dict({n: tensors[f"model/{n}"] for n in trainable_names}, strict=False)
        restore_optimizer(optimizer, tensors, info["param_groups"])
        scheduler.load_state_dict(info["scheduler"])
        torch.set_rng_state(tensors["torch_rng"])
        rng.bit_generator.state = info["epoch_rng"]
        history = info["history"]
        if selector is not None:
            selector.restore(tensors, trainable_names)
        start_epoch, start_step = info["epoch"], info["step"]
        resumed_loss = (info["loss_sum"], info["seen"])
        emit(f"resuming from checkpoint {checkpointer.directory}: epoch {start_epoch}, "
             f"step {start_step}/{steps_per_epoch}")
    for epoch in range(start_epoch, settings.epochs + 1):
        model.train()
        started = time.perf_counter()
        epoch_rng = rng.bit_generator.state
        skip = start_step if epoch == start_epoch else 0
        loss_sum, seen = resumed_loss if skip else (0.0, 0)
        for step, batch in enumerate(grouped_batches(lengths, settings.batch_size, rng), 1):
            if step <= skip:
                continue
            ids, mask = collate([enc_train[i] for i in batch], pad)
            loss = torch.nn.functional.cross_entropy(
                model(ids, mask), y_train[batch], label_smoothing=settings.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += loss.item() * len(batch)
            seen += len(batch)
            if step % 50 == 0:
                emit(f"epoch {epoch} step {step}/{steps_per_epoch} loss {loss_sum / seen:.4f}")
            if checkpointer is not None and step % checkpointer.every_steps == 0 \
                    and step < steps_per_epoch:
                save(epoch, step, epoch_rng, loss_sum, seen)
                emit(f"checkpoint saved: epoch {epoch} step {step}/{steps_per_epoch}")
        seconds = time.perf_counter() - started
        record = {
            "epoch": epoch,
            "train_loss": loss_sum / max(seen, 1),
            "seconds": seconds,
            "samples_per_second": seen / max(seconds, 1e-9),
        }
        if len(enc_val):
            pred = validation_predictions()
            record["validation_accuracy"] = float(accuracy_score(job.validation_labels, pred))
            record["validation_macro_f1"] = float(
                f1_score(job.validation_labels, pred, average="macro", zero_division=0))
            if selector is not None:
                selector.add(epoch, pred, snapshot())
        history.append(record)
        if on_epoch is not None:
            on_epoch(epoch, model)
        save(epoch + 1, 0, rng.bit_generator.state, 0.0, 0)
        emit(
            f"epoch {epoch}/{settings.epochs}: loss {record['train_loss']:.4f}, "
            f"val accuracy {record.get('validation_accuracy', float('nan')):.4f}, "
            f"{record['samples_per_second']:.1f} samples/s"
        )
    if selector is None:
        return history, None
    kept, report = selector.choose()
    model.load_state_dict(selector.weights[kept], strict=False)
    for record in history:
        record["selected"] = record["epoch"] == kept
    emit(f"kept epoch {kept}: {report['reason']}")
    return history, report
