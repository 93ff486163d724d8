"""Mapped candidates: an earlier version's champion through the taxonomy mapping.

A new taxonomy version that only renames, merges, retires or keeps labels (or splits them
by rules that decide every row) needs no training: the champion of the previous version,
its probabilities summed over each new label's group (``modelops.domain.mapped_head``), is
a classifier for the new labels. :func:`build_mapped_candidate` registers it as a
candidate of the new version:

- its artifact holds the old adapter's weight files, byte for byte (so the same
  ``weights_sha256``: no new weights), ``label_mapping.json`` (the mapping, in canonical
  form with its fingerprint), the linear-probe baseline and the drift reference
  (``monitoring/``) computed on the new version's dataset, and a manifest;
- its lineage is ``kind: mapped`` with ``mapped_from`` (the old champion: id, version,
  weights and artifact hashes, the mapping's fingerprint) and the new version's dataset;
- it loads like any adapter (``modelops.lifecycle.fetch.load_adapter``), so evaluation,
  the predictor, batch scoring and serving need nothing else.

:func:`reproduce_mapped` re-derives one from its lineage: the old champion's weights (same
sha256) through the mapping rebuilt from the taxonomy files (same fingerprint).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from modelops.config.fingerprint import sha256_json
from modelops.config.progress import Emit
from modelops.config.recipe import LoadedRecipe, Recipe, load_recipe
from modelops.domain.dataset import PreparedDataset
from modelops.domain.label_mapping import LabelMapping
from modelops.domain.lineage import (
    MANIFEST_FILE,
    MANIFEST_FORMAT,
    code_version,
    library_versions,
    now_iso,
)
from modelops.domain.mapped_head import MAPPED_FILE, MappedHead, mapped_blockers
from modelops.domain.taxonomy_mapping import load_chain
from modelops.lifecycle.dataset import DatasetRecord, load_dataset
from modelops.lifecycle.fetch import FetchedAdapter, read_mapped_head
from modelops.lifecycle.platform import Platform
from modelops.ml.adapter_methods import FULL_WEIGHTS_FILE, is_full_adapter
from modelops.ml.catalog import ResolvedBase
from modelops.ml.model import LABELS_FILE, PooledClassifier, embed_texts, load_base
from modelops.ml.probe import fit_probe
from modelops.ml.training import BASELINE_FILE, weights_digest
from modelops.monitoring.reference import build_bundle
from modelops.stores.registry_records import CHAMPION, AdapterVersion, taxonomy_version_key

log = logging.getLogger(__name__)
KIND = "mapped"
# Files of the old adapter that the mapped one carries over (its weights and their config).
CARRIED = ("adapter_config.json", "adapter_model.safetensors", "head.safetensors", LABELS_FILE)
FULL_CARRIED = (FULL_WEIGHTS_FILE, "head.safetensors", LABELS_FILE)
"""What a mapped adapter carries of a full fine-tune (``modelops.ml.adapter_methods``)."""


@dataclass(frozen=True)
class MappedBuild:
    """A mapped candidate, or why there is none."""

    version: AdapterVersion | None
    reason: str
    source: AdapterVersion | None = None


def is_mapped(version: AdapterVersion) -> bool:
    """Whether a registered adapter is a mapped candidate (no weights of its own)."""
    return (version.lineage or {}).get("kind") == KIND


def source_champion(platform: Platform, recipe: str, version: str) -> AdapterVersion | None:
    """The champion of the newest taxonomy version before ``version`` that has one."""
    older = [
        (v, info[CHAMPION])
        for v, info in platform.registry.versions(recipe).items()
        if info[CHAMPION] is not None and taxonomy_version_key(v) < taxonomy_version_key(version)
    ]
    if not older:
        return None
    _, champion_id = max(older, key=lambda item: taxonomy_version_key(item[0]))
    return platform.registry.get(champion_id)


def chain_from(
    loaded: LoadedRecipe, source: AdapterVersion, head: MappedHead | None, version: str
) -> LabelMapping:
    """The mapping from the labels the source's weights predict to ``version``'s: the
    source's own mapping (when it is mapped) followed by the taxonomy chain."""
    chain = load_chain(
        loaded.taxonomies_root, loaded.taxonomy.name, source.taxonomy_version, version
    )
    return head.mapping.then(chain) if head is not None else chain


def build_mapped_candidate(
    platform: Platform, loaded: LoadedRecipe, dataset: DatasetRecord, emit: Emit = log.info
) -> MappedBuild:
    """Register the earlier champion through the mapping as a candidate of the dataset's
    version; reuse one already registered with the same lineage. None with the reason
    when there is no earlier champion or the mapping does not allow it."""
    version = dataset.taxonomy_version or loaded.data_version
    source = source_champion(platform, loaded.name, version)
    if source is None:
        return MappedBuild(None, f"no champion of a version before {version} to map from")
    started = time.perf_counter()
    with FetchedAdapter(platform, source) as fetched:
        old_head = read_mapped_head(fetched.path)
        mapping = chain_from(loaded, source, old_head, version)
        blockers = mapped_blockers(mapping, int(dataset.stats.get("review_rows", 0)))
        if blockers:
            reason = f"champion {source.id} of {source.taxonomy_version} not mapped: " + "; ".join(
                blockers
            )
            emit(reason)
            return MappedBuild(None, reason, source)
        for existing in platform.registry.list(loaded.name):
            mapped_from = (existing.lineage or {}).get("mapped_from") or {}
            if (
                is_mapped(existing)
                and mapped_from.get("adapter_id") == source.id
                and mapped_from.get("mapping_fingerprint") == mapping.fingerprint()
                and existing.dataset_fingerprint == dataset.fingerprint
            ):
                emit(f"mapped candidate {existing.id} already has this lineage; reusing it")
                return MappedBuild(existing, "already registered", source)
        weights_labels = json.loads((fetched.path / LABELS_FILE).read_text(encoding="utf-8"))
        head = MappedHead(mapping, weights_labels["labels"])
        if head.target_labels != list(dataset.labels):  # pragma: no cover - same taxonomy file
            return MappedBuild(None, f"the labels of {version} differ from its dataset's", source)
        emit(
            f"mapping champion {source.id} ({source.taxonomy_version}) onto {version}: "
            f"{len(head.source_labels)} -> {len(head.target_labels)} labels"
        )
        with tempfile.TemporaryDirectory(prefix="mapped-") as tmp:
            out = Path(tmp) / "adapter"
            out.mkdir()
            for name in FULL_CARRIED if is_full_adapter(fetched.path) else CARRIED:
                shutil.copy2(fetched.path / name, out / name)
            return _register(
                platform, loaded, dataset, source, fetched.manifest, head, out, started, emit
            )


def _register(platform, loaded, dataset, source, source_manifest, head, out, started, emit):
    """Complete the mapped adapter's folder ``out`` (the mapping, the baseline, the drift
    reference, the manifest), store it and register it as a candidate."""
    (out / MAPPED_FILE).write_text(json.dumps(head.to_dict(), indent=2) + "\n", encoding="utf-8")
    digest, files = weights_digest(out)
    if digest != source.weights_sha256:  # pragma: no cover - FetchedAdapter verified them
        raise AssertionError("copied weights changed")
    snapshot, recipe = _scoring_recipe(loaded, source_manifest)
    baseline, thresholds = _baseline_and_reference(
        platform, recipe, source, dataset, head, out, emit
    )
    seconds = time.perf_counter() - started
    lineage = _mapped_lineage(platform, loaded, dataset, source, source_manifest, head, snapshot)
    manifest = {
        "format": MANIFEST_FORMAT,
        **lineage,
        "weights_sha256": digest,
        "files": files,
        "baseline": {k: v for k, v in baseline.items() if k != "test"},
        "drift_thresholds": thresholds,
        "code_version": code_version(),
        "libraries": library_versions(),
        "build_seconds": seconds,
        "created_at": now_iso(),
    }
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    registered, uri = _store_and_register(
        platform, loaded, dataset, source, head, out, manifest, baseline
    )
    emit(f"registered mapped candidate {registered.id} ({uri}) in {seconds:.1f} s")
    return MappedBuild(registered, "registered", source)


def _scoring_recipe(loaded: LoadedRecipe, source_manifest: dict) -> tuple[dict, Recipe]:
    """The recipe snapshot the mapped adapter records, and the recipe it is scored with:
    the old model's ``max_length`` (it is scored as the old model was), the recipe's gates
    as they are now."""
    snapshot = loaded.snapshot()
    old_recipe = Recipe.model_validate(source_manifest["recipe_snapshot"]["recipe"])
    snapshot["recipe"]["training"]["max_length"] = old_recipe.training.max_length
    return snapshot, Recipe.model_validate(snapshot["recipe"])


def _baseline_and_reference(platform, recipe, source, dataset, head, out, emit):
    """The linear-probe baseline (written to ``out``) and the drift reference of the new
    version's dataset, on the source's own base. Returns the baseline and the thresholds."""
    base = platform.resolve_base_by_sha256(source.base_model_sha256)
    prepared = load_dataset(platform, dataset.to_dict())
    emit("linear-probe baseline of the new version's dataset (the same gate as training)")
    baseline = probe_baseline(recipe, base, prepared)
    (out / BASELINE_FILE).write_text(json.dumps(baseline, indent=2) + "\n", encoding="utf-8")
    thresholds = build_bundle(
        recipe=recipe, base=base, dataset=prepared, adapter_dir=out, emit=emit, head=head
    )
    return baseline, thresholds


def _mapped_lineage(platform, loaded, dataset, source, source_manifest, head, snapshot) -> dict:
    """``kind: mapped``: the recipe, the new version's dataset, and ``mapped_from`` (the old
    champion's id, weights and artifact hashes, the mapping's fingerprint)."""
    record = dataset.to_dict()
    return {
        "kind": KIND,
        "recipe": loaded.name,
        "recipe_fingerprint": loaded.fingerprint(),
        "recipe_snapshot": snapshot,
        "taxonomy": dataset.taxonomy,
        "taxonomy_version": dataset.taxonomy_version or loaded.data_version,
        "data_taxonomy": loaded.taxonomy.ref,
        "mapping_fingerprint": dataset.mapping_fingerprint,
        "mapped_from": {
            "adapter_id": source.id,
            "taxonomy_version": source.taxonomy_version,
            "weights_sha256": source.weights_sha256,
            "artifact_uri": source.artifact_uri,
            "artifact_sha256": source.artifact_sha256,
            "mapping_source": head.mapping.source,
            "mapping_fingerprint": head.mapping.fingerprint(),
            "weights_adapter_id": (source.lineage.get("mapped_from") or {}).get(
                "weights_adapter_id", source.id
            ),
        },
        "dataset": {k: record[k] for k in ("key", "sha256", "fingerprint", "labels", "uri")},
        "base_model": source_manifest["base_model"],
        "seed": source_manifest.get("seed"),
        "torch_threads": platform.settings.torch_threads,
        "mode": KIND,
        "warm_start": None,
    }


def _store_and_register(platform, loaded, dataset, source, head, out, manifest, baseline):
    """Store the folder ``out`` under its weights and dataset, register it; returns the
    registered version and the artifact's URI."""
    version, digest = manifest["taxonomy_version"], manifest["weights_sha256"]
    key = f"adapters/{loaded.name}/{version}/mapped-{digest[:12]}-{dataset.fingerprint[:12]}"
    ref = platform.store.put_dir(key, out)
    registered = platform.registry.register(
        recipe=loaded.name,
        taxonomy_version=version,
        base_model=source.base_model,
        base_model_sha256=source.base_model_sha256,
        dataset_fingerprint=dataset.fingerprint,
        # Its own: a training with the same recipe and data must not take it for itself.
        recipe_fingerprint=sha256_json(
            {
                "kind": KIND,
                "recipe": loaded.fingerprint(),
                "mapping": head.mapping.fingerprint(),
                "weights": digest,
            }
        ),
        artifact_uri=ref.uri,
        artifact_sha256=ref.sha256,
        weights_sha256=digest,
        lineage={k: v for k, v in manifest.items() if k != "files"},
        metrics={
            "build_seconds": manifest["build_seconds"],
            "baseline_test_macro_f1": baseline["test"]["macro_f1"],
            "mapped_from_adapter_id": source.id,
        },
        who=platform.settings.user,
    )
    return registered, ref.uri


def probe_baseline(recipe: Recipe, base: ResolvedBase, dataset: PreparedDataset) -> dict:
    """The linear probe on the frozen base's embeddings of the dataset: the baseline a
    trained adapter of the same dataset records (``modelops.ml.training``)."""
    tokenizer, encoder = load_base(base.path)
    model = PooledClassifier(encoder, 1, recipe.head.pooling or base.entry.pooling)
    settings = recipe.training
    feats = {
        split: embed_texts(
            tokenizer,
            model,
            dataset.split(split)["text"].tolist(),
            max_length=settings.max_length,
            batch_size=settings.eval_batch_size,
        )
        for split in ("train", "validation", "test")
    }
    _, result = fit_probe(recipe, feats, dataset, dataset.labels)
    result["method"] = "linear_probe_for_mapped_candidate"
    return result


def reproduce_mapped(platform: Platform, version: AdapterVersion, emit: Emit = log.info) -> dict:
    """Re-derive a mapped candidate: fetch its old champion (weights sha256 verified),
    rebuild the mapping from the taxonomy files, compare both with the record."""
    lineage = version.lineage
    mapped_from = lineage["mapped_from"]
    snapshot = lineage["recipe_snapshot"]
    recipe_path = Path(snapshot["path"])
    if not recipe_path.is_file():
        recipe_path = platform.settings.recipes_dir / f"{version.recipe}.yaml"
    loaded = load_recipe(recipe_path)
    source = platform.registry.get(mapped_from["adapter_id"])
    emit(f"re-deriving mapped adapter {version.id} from champion {source.id} and the mapping")
    with FetchedAdapter(platform, source) as fetched:
        digest, _ = weights_digest(fetched.path)
        mapping = chain_from(
            loaded, source, read_mapped_head(fetched.path), version.taxonomy_version
        )
    fingerprint = mapping.fingerprint()
    return {
        "adapter_id": version.id,
        "recipe": version.recipe,
        "kind": KIND,
        "mapped_from_adapter_id": source.id,
        "recorded_weights_sha256": version.weights_sha256,
        "reproduced_weights_sha256": digest,
        "recorded_mapping_fingerprint": mapped_from["mapping_fingerprint"],
        "reproduced_mapping_fingerprint": fingerprint,
        "identical": digest == version.weights_sha256
        and fingerprint == mapped_from["mapping_fingerprint"],
        "dataset_fingerprint": version.dataset_fingerprint,
        "base_model_sha256": version.base_model_sha256,
        "recorded_code_version": lineage.get("code_version"),
        "code_version": code_version(),
    }
