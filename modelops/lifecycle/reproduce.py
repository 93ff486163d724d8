"""Re-train an adapter from its recorded lineage and compare the weights' sha256."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from modelops.config.errors import IntegrityError
from modelops.config.progress import Emit
from modelops.config.recipe import Recipe
from modelops.domain.lineage import (
    code_version,
    library_versions,
)
from modelops.lifecycle.lineage_run import LineageRun, train_from_lineage
from modelops.lifecycle.mapped import is_mapped, reproduce_mapped
from modelops.lifecycle.platform import Platform

log = logging.getLogger(__name__)


def reproduce(platform: Platform, adapter_id: int, emit: Emit = log.info) -> dict:
    """Re-run an adapter's recorded lineage and compare the new weights' sha256; a
    mapped adapter is re-derived instead (``modelops.lifecycle.mapped.reproduce_mapped``)."""
    version = platform.registry.get(adapter_id)
    if is_mapped(version):  # no training to re-run: the weights and the mapping
        return reproduce_mapped(platform, version, emit)
    lineage = version.lineage
    recipe = Recipe.model_validate(lineage["recipe_snapshot"]["recipe"])
    base = platform.resolve_base_by_sha256(lineage["base_model"]["sha256"])
    if lineage["dataset"]["fingerprint"] != version.dataset_fingerprint:
        raise IntegrityError(f"adapter {adapter_id}: recorded dataset fingerprints differ")
    threads = int(lineage.get("torch_threads") or platform.settings.torch_threads)
    # Lineages recorded before the BLAS threads were pinned ran the probe with torch's count.
    blas_threads = int(lineage.get("blas_threads") or threads)
    emit(
        f"re-training adapter {adapter_id} from its lineage ({threads} torch threads, "
        f"{blas_threads} BLAS threads)"
    )
    with tempfile.TemporaryDirectory(prefix="reproduce-") as tmp:
        run = LineageRun(
            recipe=recipe,
            base=base,
            dataset=lineage["dataset"],
            lineage=lineage,
            out_dir=Path(tmp) / "adapter",
            threads=threads,
            blas_threads=blas_threads,
        )
        result, _ = train_from_lineage(platform, run, emit)
    return {
        "adapter_id": adapter_id,
        "recipe": version.recipe,
        "recorded_weights_sha256": version.weights_sha256,
        "reproduced_weights_sha256": result.weights_sha256,
        "identical": result.weights_sha256 == version.weights_sha256,
        "recipe_fingerprint": version.recipe_fingerprint,
        "dataset_fingerprint": version.dataset_fingerprint,
        "base_model_sha256": base.sha256,
        "seed": recipe.training.seed,
        "torch_threads": threads,
        "blas_threads": blas_threads,
        "warm_start": lineage.get("warm_start"),
        "distillation": lineage.get("distillation"),
        "recorded_code_version": lineage.get("code_version"),
        "code_version": code_version(),
        "recorded_libraries": lineage.get("libraries"),
        "libraries": library_versions(),
    }
