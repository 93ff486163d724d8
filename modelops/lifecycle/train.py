"""The training step: an adapter from a stored dataset (full or incremental), stored and
registered as a candidate with its whole lineage."""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelops.config.fingerprint import sha256_json
from modelops.config.progress import Emit
from modelops.config.recipe import LoadedRecipe, Recipe
from modelops.domain.dataset import (
    PreparedDataset,
    incremental_split,
)
from modelops.domain.lineage import (
    MANIFEST_FILE,
    MANIFEST_FORMAT,
    code_version,
    library_versions,
    now_iso,
)
from modelops.lifecycle.cost import dir_bytes, measure
from modelops.lifecycle.dataset import DatasetRecord, load_dataset
from modelops.lifecycle.fetch import FetchedAdapter
from modelops.lifecycle.mapped import is_mapped
from modelops.lifecycle.platform import Platform
from modelops.ml.base_inspect import base_lineage
from modelops.ml.catalog import ResolvedBase
from modelops.ml.checkpoint import Checkpointer
from modelops.ml.training import TrainingResult, train_classifier
from modelops.ml.warm_start import WarmStart
from modelops.monitoring.reference import build_bundle, calibration_summary
from modelops.stores.registry_records import AdapterVersion

log = logging.getLogger(__name__)


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


def train_adapter(
    platform: Platform,
    loaded: LoadedRecipe,
    dataset: DatasetRecord,
    emit: Emit = log.info,
    mode: str = "full",
    base_ref: str | None = None,
) -> AdapterVersion:
    """Train an adapter from a stored dataset, store it, register it as candidate.

    ``mode="incremental"`` warm-starts from the champion of the same taxonomy version and
    trains on the rows it has not seen plus a replay sample of those it has (the recipe's
    ``retraining`` settings); without such a champion it trains in full.

    An adapter already registered with the same lineage (recipe fingerprint, dataset
    fingerprint, base-model hash, warm start) is returned without training: re-running
    finished work is a no-op. Identical weights are never registered twice.

    ``base_ref`` (``name@revision``, the partition's base) trains on that base instead of
    the one the recipe's ``base_model`` resolves to now.
    """
    recipe = loaded.recipe
    base = platform.resolve_base(base_ref or recipe.base_model)
    emit(f"base model {base.entry.ref} sha256 {base.sha256[:12]} at {base.path}")
    recipe_fingerprint = loaded.fingerprint()
    version = dataset.taxonomy_version or loaded.data_version
    warm = None
    if mode == "incremental":
        warm = platform.registry.alias(loaded.name, "champion", taxonomy_version=version)
        if warm is None:
            emit(f"no champion of {version} to warm-start from: training in full")
        elif is_mapped(warm):
            emit(f"champion {warm.id} of {version} is a mapped candidate (another label set): "
                 "training in full")
            warm = None
        elif warm.base_model_sha256 != base.sha256:  # the base moved (docs/base-models.md)
            emit(f"champion {warm.id} of {version} was trained on base {warm.base_model}, not "
                 f"{base.entry.ref}: training in full on the new base")
            warm = None
    for existing in platform.registry.list(loaded.name):
        if (
            not is_mapped(existing)
            and existing.recipe_fingerprint == recipe_fingerprint
            and existing.dataset_fingerprint == dataset.fingerprint
            and existing.base_model_sha256 == base.sha256
            and (existing.lineage.get("warm_start") or {}).get("adapter_id")
            == (warm.id if warm else None)
        ):
            emit(f"adapter {existing.id} already has this lineage; not training again")
            return existing
    record = dataset.to_dict()
    threads = platform.settings.torch_threads
    lineage = {
        "recipe": loaded.name,
        "recipe_fingerprint": recipe_fingerprint,
        "recipe_snapshot": loaded.snapshot(),
        "taxonomy": dataset.taxonomy,
        "taxonomy_version": version,
        "data_taxonomy": loaded.taxonomy.ref,
        "mapping_fingerprint": dataset.mapping_fingerprint,
        "dataset": {k: record[k] for k in ("key", "sha256", "fingerprint", "labels", "uri")},
        "base_model": base_lineage(base.entry.ref, base.sha256, base.path,
                                   recipe.head.pooling or base.entry.pooling),
        "seed": recipe.training.seed,
        "torch_threads": threads,
        "blas_threads": threads,
        "mode": "incremental" if warm else "full",
        "warm_start": None,
    }
    with tempfile.TemporaryDirectory(prefix="adapter-") as tmp:
        out = Path(tmp) / "adapter"
        if warm is not None:
            lineage["warm_start"] = {
                "adapter_id": warm.id,
                "weights_sha256": warm.weights_sha256,
                "replay_fraction": recipe.retraining.replay_fraction,
                "epochs": recipe.retraining.epochs or recipe.training.epochs,
            }
        # A killed run resumes from its checkpoint, kept under the cache and keyed by the
        # lineage, so only the very same training can pick it up (docs/reliability.md).
        checkpointer = Checkpointer(
            platform.settings.cache_dir / "checkpoints" / sha256_json(lineage)[:32],
            every_steps=platform.settings.checkpoint_steps,
        )
        run = LineageRun(recipe=recipe, base=base, dataset=record, lineage=lineage,
                         out_dir=out, threads=threads, checkpointer=checkpointer)
        with measure() as cost:
            result, prepared = train_from_lineage(platform, run, emit)
        for existing in platform.registry.find_by_weights(loaded.name, result.weights_sha256):
            if existing.taxonomy_version == version and (
                existing.lineage.get("dataset", {}).get("labels") == dataset.labels
            ):
                emit(f"identical weights already registered as adapter {existing.id}; reusing")
                checkpointer.clear()
                return existing
        cost = training_cost(cost, out, base.path)
        thresholds = build_bundle(
            recipe=recipe, base=base, dataset=prepared, adapter_dir=out, emit=emit
        )
        manifest = {
            "format": MANIFEST_FORMAT,
            **lineage,
            "weights_sha256": result.weights_sha256,
            "files": result.files,
            "history": result.history,
            "selected_epoch": result.selected_epoch,
            "selection": result.selection,
            "lora_nonzero": result.lora_nonzero,
            "baseline": {k: v for k, v in result.baseline.items() if k != "test"},
            "drift_thresholds": thresholds,
            "drift_calibration": calibration_summary(out),
            "code_version": code_version(),
            "libraries": library_versions(),
            "train_seconds": result.seconds,
            "train_rows": result.train_rows,
            "samples_per_second": result.samples_per_second,
            "cost": cost,
            "created_at": now_iso(),
        }
        (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        key = f"adapters/{loaded.name}/{version}/{result.weights_sha256[:24]}"
        ref = platform.store.put_dir(key, out)
    last = result.history[-1] if result.history else {}
    metrics = {
        "train_loss": last.get("train_loss"),
        "validation_accuracy": last.get("validation_accuracy"),
        "validation_macro_f1": last.get("validation_macro_f1"),
        "samples_per_second": result.samples_per_second,
        "train_seconds": result.seconds,
        "train_rows": result.train_rows,
        "baseline_test_macro_f1": result.baseline["test"]["macro_f1"],
        "selected_epoch": result.selected_epoch,
        "lora_nonzero": result.lora_nonzero,
        **{f"cost_{k}": v for k, v in cost.items()},
    }
    registered = platform.registry.register(
        recipe=loaded.name,
        taxonomy_version=version,
        base_model=base.entry.ref,
        base_model_sha256=base.sha256,
        dataset_fingerprint=dataset.fingerprint,
        recipe_fingerprint=lineage["recipe_fingerprint"],
        artifact_uri=ref.uri,
        artifact_sha256=ref.sha256,
        weights_sha256=result.weights_sha256,
        lineage={k: v for k, v in manifest.items() if k != "files"},
        metrics=metrics,
        who=platform.settings.user,
    )
    checkpointer.clear()
    kept = f"kept epoch {result.selected_epoch}" + (
        "" if result.lora_nonzero else ", LoRA weights all zero (the probe head alone)"
    )
    emit(f"registered adapter {registered.id} ({ref.uri}) as candidate; {kept}")
    return registered


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
        result = train_classifier(
            recipe=recipe, base=base, dataset=prepared, out_dir=out, threads=threads, emit=emit,
            checkpointer=run.checkpointer, blas_threads=run.blas_threads,
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
        )
    return result, prepared


def training_cost(measured: dict, adapter_dir: Path, base_dir: Path) -> dict:
    """The measured training cost plus the adapter's and the base's size on disk."""
    return {
        "train_wall_seconds": round(measured["wall_seconds"], 3),
        "train_cpu_seconds": round(measured["cpu_seconds"], 3),
        **({"train_gpu_seconds": round(measured["gpu_seconds"], 3),
            "peak_gpu_bytes": measured["peak_gpu_bytes"]} if "gpu_seconds" in measured else {}),
        "peak_rss_bytes": measured["peak_rss_bytes"],
        "adapter_bytes": dir_bytes(adapter_dir),
        "base_bytes": dir_bytes(base_dir),
    }
