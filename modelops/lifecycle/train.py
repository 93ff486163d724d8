"""The training step: an adapter from a stored dataset (full or incremental), stored and
registered as a candidate with its whole lineage."""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from modelops.config.fingerprint import sha256_json
from modelops.config.progress import Emit
from modelops.config.recipe import LoadedRecipe
from modelops.domain.dataset import (
    PreparedDataset,
)
from modelops.domain.lineage import (
    MANIFEST_FILE,
    MANIFEST_FORMAT,
    code_version,
    library_versions,
    now_iso,
)
from modelops.lifecycle.candidate_scores import find_champion, score_for_evaluation
from modelops.lifecycle.cost import dir_bytes, measure
from modelops.lifecycle.dataset import DatasetRecord, load_dataset
from modelops.lifecycle.distillation import Distillation, recorded_identity, resolve_distillation
from modelops.lifecycle.lineage_run import LineageRun, train_from_lineage
from modelops.lifecycle.mapped import is_mapped
from modelops.lifecycle.platform import Platform
from modelops.lifecycle.soft_labels import store_soft_labels
from modelops.ml.base_inspect import base_lineage
from modelops.ml.catalog import ResolvedBase
from modelops.ml.checkpoint import Checkpointer
from modelops.ml.training import TrainingResult
from modelops.monitoring.reference import build_bundle, calibration_summary
from modelops.stores.registry_records import AdapterVersion

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Request:
    """One ``train_adapter`` call resolved: the base it trains on, the taxonomy version and
    the warm start (None: a full training)."""

    platform: Platform
    loaded: LoadedRecipe
    dataset: DatasetRecord
    base: ResolvedBase
    version: str
    warm: AdapterVersion | None
    emit: Emit
    distill: Distillation | None = None
    """The teacher and production texts of a distillation (None: none)."""


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

    The base is loaded once: the drift reference and the scores the evaluation reads
    (``modelops.lifecycle.candidate_scores``) are taken from the model as trained.
    """
    request = _resolve(platform, loaded, dataset, emit, mode, base_ref)
    existing = _find_existing(request)
    if existing is not None:
        emit(f"adapter {existing.id} already has this lineage; not training again")
        return existing
    lineage = _lineage(request)
    if request.distill is not None:  # the teacher's soft labels, stored before training
        lineage["distillation"] = _soft_labels(request)
    # A killed run resumes from its checkpoint, kept under the cache and keyed by the
    # lineage, so only the very same training can pick it up (docs/reliability.md).
    checkpointer = Checkpointer(
        platform.settings.cache_dir / "checkpoints" / sha256_json(lineage)[:32],
        every_steps=platform.settings.checkpoint_steps,
    )
    with tempfile.TemporaryDirectory(prefix="adapter-") as tmp:
        out = Path(tmp) / "adapter"
        result, prepared, measured = _train(request, lineage, out, checkpointer)
        same = _same_weights(request, result.weights_sha256)
        if same is not None:
            emit(f"identical weights already registered as adapter {same.id}; reusing")
            checkpointer.clear()
            return same
        cost = training_cost(measured, out, request.base.path)
        thresholds = _reference_and_scores(request, result, prepared, out)
        manifest = _write_manifest(out, lineage, result, thresholds, cost)
        key = f"adapters/{loaded.name}/{request.version}/{result.weights_sha256[:24]}"
        ref = platform.store.put_dir(key, out)
    registered = _register(request, manifest, result, cost, ref)
    checkpointer.clear()
    return registered


def _resolve(
    platform: Platform,
    loaded: LoadedRecipe,
    dataset: DatasetRecord,
    emit: Emit,
    mode: str,
    base_ref: str | None,
) -> _Request:
    """The base to train on and, for an incremental run, the champion to start from."""
    base = platform.resolve_base(base_ref or loaded.recipe.base_model)
    emit(f"base model {base.entry.ref} sha256 {base.sha256[:12]} at {base.path}")
    version = dataset.taxonomy_version or loaded.data_version
    warm, distill = None, None
    if loaded.recipe.distillation is not None:
        if mode == "incremental":
            emit("a distillation trains in full: the soft labels are the teacher's")
        prepared = load_dataset(platform, dataset.to_dict())
        distill = resolve_distillation(platform, loaded, version, prepared, emit)
    elif mode == "incremental":
        warm = _warm_start(platform, loaded.name, version, base, emit)
    return _Request(platform, loaded, dataset, base, version, warm, emit, distill)


def _warm_start(
    platform: Platform, recipe: str, version: str, base: ResolvedBase, emit: Emit
) -> AdapterVersion | None:
    """The champion of ``version`` to warm-start from; None (a full training) without one,
    when it is a mapped candidate or when it was trained on another base."""
    warm = platform.registry.alias(recipe, "champion", taxonomy_version=version)
    if warm is None:
        emit(f"no champion of {version} to warm-start from: training in full")
        return None
    if is_mapped(warm):
        emit(
            f"champion {warm.id} of {version} is a mapped candidate (another label set): "
            "training in full"
        )
        return None
    if warm.base_model_sha256 != base.sha256:  # the base moved (docs/base-models.md)
        emit(
            f"champion {warm.id} of {version} was trained on base {warm.base_model}, not "
            f"{base.entry.ref}: training in full on the new base"
        )
        return None
    return warm


def _soft_labels(request: _Request) -> dict:
    """The teacher's soft labels stored (or found stored): the lineage's record."""
    dataset = load_dataset(request.platform, request.dataset.to_dict())
    return store_soft_labels(
        request.platform,
        request.loaded.name,
        request.version,
        request.distill,
        dataset,
        request.emit,
    )


def _find_existing(request: _Request) -> AdapterVersion | None:
    """An adapter already registered with this lineage (recipe, dataset, base, warm start,
    teacher and production texts)."""
    fingerprint = request.loaded.fingerprint()
    warm_id = request.warm.id if request.warm else None
    taught = request.distill.identity() if request.distill else None
    for existing in request.platform.registry.list(request.loaded.name):
        if (
            not is_mapped(existing)
            and existing.recipe_fingerprint == fingerprint
            and existing.dataset_fingerprint == request.dataset.fingerprint
            and existing.base_model_sha256 == request.base.sha256
            and (existing.lineage.get("warm_start") or {}).get("adapter_id") == warm_id
            and recorded_identity(existing.lineage) == taught
        ):
            return existing
    return None


def _lineage(request: _Request) -> dict:
    """What the training is: recipe, data, base, seed, threads and warm start."""
    loaded, dataset, base, warm = request.loaded, request.dataset, request.base, request.warm
    recipe = loaded.recipe
    record = dataset.to_dict()
    threads = request.platform.settings.torch_threads
    return {
        "recipe": loaded.name,
        "recipe_fingerprint": loaded.fingerprint(),
        "recipe_snapshot": loaded.snapshot(),
        "taxonomy": dataset.taxonomy,
        "taxonomy_version": request.version,
        "data_taxonomy": loaded.taxonomy.ref,
        "mapping_fingerprint": dataset.mapping_fingerprint,
        "dataset": {k: record[k] for k in ("key", "sha256", "fingerprint", "labels", "uri")},
        "base_model": base_lineage(
            base.entry.ref, base.sha256, base.path, recipe.head.pooling or base.entry.pooling
        ),
        "seed": recipe.training.seed,
        "torch_threads": threads,
        "blas_threads": threads,
        "mode": "incremental" if warm else "full",
        "warm_start": None
        if warm is None
        else {
            "adapter_id": warm.id,
            "weights_sha256": warm.weights_sha256,
            "replay_fraction": recipe.retraining.replay_fraction,
            "epochs": recipe.retraining.epochs or recipe.training.epochs,
        },
    }


def _train(
    request: _Request, lineage: dict, out: Path, checkpointer: Checkpointer
) -> tuple[TrainingResult, PreparedDataset, dict]:
    """Train into ``out``, keeping the model in memory; the result, the dataset and the
    measured cost (``modelops.lifecycle.cost.measure``)."""
    run = LineageRun(
        recipe=request.loaded.recipe,
        base=request.base,
        dataset=request.dataset.to_dict(),
        lineage=lineage,
        out_dir=out,
        threads=request.platform.settings.torch_threads,
        checkpointer=checkpointer,
        keep_model=True,
    )
    with measure() as measured:
        result, prepared = train_from_lineage(request.platform, run, request.emit)
    return result, prepared, measured


def _reference_and_scores(
    request: _Request, result: TrainingResult, prepared: PreparedDataset, out: Path
) -> dict:
    """From the model as trained (no second load of the base): the drift reference in
    ``out`` (its calibrated thresholds returned) and the test-split scores the evaluation
    reads (``modelops.lifecycle.candidate_scores``)."""
    recipe = request.loaded.recipe
    thresholds = build_bundle(
        recipe=recipe,
        base=request.base,
        dataset=prepared,
        adapter_dir=out,
        emit=request.emit,
        trained=result.trained,
    )
    score_for_evaluation(
        request.platform,
        result.trained,
        out,
        base=request.base,
        champion=_champion(request),
        texts=prepared.split("test")["text"].tolist(),
        max_length=recipe.training.max_length,
        emit=request.emit,
        weigh_cost=recipe.gates.weigh_cost,
    )
    return thresholds


def _same_weights(request: _Request, weights_sha256: str) -> AdapterVersion | None:
    """An adapter of the same version and labels already registered with these weights."""
    for existing in request.platform.registry.find_by_weights(request.loaded.name, weights_sha256):
        if existing.taxonomy_version == request.version and (
            existing.lineage.get("dataset", {}).get("labels") == request.dataset.labels
        ):
            return existing
    return None


def _champion(request: _Request) -> AdapterVersion | None:
    """The champion the evaluation will compare the candidate with, if it is on the base
    this training loaded (then it is scored beside the candidate)."""
    champion, _ = find_champion(request.platform.registry, request.loaded.name, request.version)
    if champion is None or champion.base_model_sha256 != request.base.sha256:
        return None
    return champion


def _write_manifest(
    out: Path, lineage: dict, result: TrainingResult, thresholds: dict, cost: dict
) -> dict:
    manifest = {
        "format": MANIFEST_FORMAT,
        **lineage,
        "weights_sha256": result.weights_sha256,
        "files": result.files,
        "history": result.history,
        "selected_epoch": result.selected_epoch,
        "selection": result.selection,
        "lora_nonzero": result.lora_nonzero,
        "adapter_method": lineage["recipe_snapshot"]["recipe"]["adapter"]["method"],
        "contrastive": result.contrastive,
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
    return manifest


def _register(
    request: _Request, manifest: dict, result: TrainingResult, cost: dict, ref
) -> AdapterVersion:
    """The stored adapter registered as a candidate, with its training metrics."""
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
    platform, base = request.platform, request.base
    registered = platform.registry.register(
        recipe=request.loaded.name,
        taxonomy_version=request.version,
        base_model=base.entry.ref,
        base_model_sha256=base.sha256,
        dataset_fingerprint=request.dataset.fingerprint,
        recipe_fingerprint=manifest["recipe_fingerprint"],
        artifact_uri=ref.uri,
        artifact_sha256=ref.sha256,
        weights_sha256=result.weights_sha256,
        lineage={k: v for k, v in manifest.items() if k != "files"},
        metrics=metrics,
        who=platform.settings.user,
    )
    kept = f"kept epoch {result.selected_epoch}" + (
        "" if result.lora_nonzero else ", encoder as the base's (the probe head alone)"
    )
    request.emit(f"registered adapter {registered.id} ({ref.uri}) as candidate; {kept}")
    return registered


def training_cost(measured: dict, adapter_dir: Path, base_dir: Path) -> dict:
    """The measured training cost plus the adapter's and the base's size on disk."""
    return {
        "train_wall_seconds": round(measured["wall_seconds"], 3),
        "train_cpu_seconds": round(measured["cpu_seconds"], 3),
        **(
            {
                "train_gpu_seconds": round(measured["gpu_seconds"], 3),
                "peak_gpu_bytes": measured["peak_gpu_bytes"],
            }
            if "gpu_seconds" in measured
            else {}
        ),
        "peak_rss_bytes": measured["peak_rss_bytes"],
        "adapter_bytes": dir_bytes(adapter_dir),
        "base_bytes": dir_bytes(base_dir),
    }
