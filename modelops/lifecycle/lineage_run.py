"""The training run of a lineage (full, distilled from a teacher's stored soft labels, or
incremental from its warm start): one function
for the training step (``modelops.lifecycle.train``) and ``reproduce``, so a reproduction
trains exactly as the adapter was trained."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelops.config.progress import Emit
from modelops.config.recipe import Recipe
from modelops.domain.dataset import PreparedDataset, incremental_split
from modelops.lifecycle.dataset import load_dataset
from modelops.lifecycle.fetch import FetchedAdapter
from modelops.lifecycle.platform import Platform
from modelops.lifecycle.soft_labels import read_soft_labels
from modelops.ml.catalog import ResolvedBase
from modelops.ml.checkpoint import Checkpointer
from modelops.ml.training import TrainingResult, train_classifier
from modelops.ml.warm_start import WarmStart


@dataclass(frozen=True)
class LineageRun:
    """What ``train_from_lineage`` trains: a recipe on a base model and a stored dataset (its
    record: key, sha256, fingerprint, labels), as the lineage says (full, or incremental from
    its warm start), into ``out_dir`` on ``threads`` torch threads."""

    recipe: Recipe
    base: ResolvedBase
    dataset: dict
    lineage: dict
    out_dir: Path
    threads: int
    blas_threads: int | None = None
    """BLAS threads of the probe fit (default ``threads``)."""
    checkpointer: Checkpointer | None = None
    """Where to checkpoint and resume the training loop; None: no checkpoints."""
    keep_model: bool = False
    """Keep the trained model in memory (``TrainingResult.trained``)."""


def train_from_lineage(
    platform: Platform, run: LineageRun, emit: Emit
) -> tuple[TrainingResult, PreparedDataset]:
    """Train from a lineage (full, or incremental from its warm start); the training
    runs of ``train_adapter`` and ``reproduce`` are this one function. Returns the result
    and the dataset loaded from the record."""
    recipe, base, out, threads = run.recipe, run.base, run.out_dir, run.threads
    prepared = load_dataset(platform, run.dataset)
    warm = run.lineage.get("warm_start")
    if not warm:
        distilled = run.lineage.get("distillation")
        result = train_classifier(
            recipe=recipe,
            base=base,
            dataset=prepared,
            out_dir=out,
            threads=threads,
            emit=emit,
            checkpointer=run.checkpointer,
            blas_threads=run.blas_threads,
            keep_model=run.keep_model,
            soft=read_soft_labels(platform, distilled, prepared) if distilled else None,
        )
        return result, prepared
    champion = platform.registry.get(warm["adapter_id"])
    previous = load_dataset(platform, champion.lineage["dataset"])
    subset = incremental_split(prepared, previous, warm["replay_fraction"])
    emit(
        f"incremental from adapter {champion.id}: "
        f"{subset.stats['incremental_new_train_rows']} new and "
        f"{subset.stats['incremental_replay_rows']} replayed training rows"
    )
    training = recipe.training.model_copy(update={"epochs": warm["epochs"]})
    seen = previous.split("train")  # the champion's training rows
    replayed = subset.split("train")["text_sha256"].isin(set(seen["text_sha256"])).to_numpy()
    with FetchedAdapter(platform, champion) as fetched:
        result = train_classifier(
            recipe=recipe.model_copy(update={"training": training}),
            base=base,
            dataset=subset,
            out_dir=out,
            threads=threads,
            emit=emit,
            warm_start=WarmStart(
                path=fetched.path,
                seen_labels=frozenset(seen["label"]),
                sample_weight=np.where(replayed, 1 / warm["replay_fraction"], 1.0),
            ),
            checkpointer=run.checkpointer,
            blas_threads=run.blas_threads,
            keep_model=run.keep_model,
        )
    return result, prepared
