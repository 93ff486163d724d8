"""``modelops base adapt``: a base model of the organisation's own, made by continuing the
masked-language-model pretraining of a catalog base on a recipe's unlabelled texts (its
training data and the texts its production log has seen), stored in the artifact store and
registered as a new catalog revision with its lineage.

Texts whose normalized hash puts them in the recipe's *test* split are left out, wherever
they come from (data or production log), so the adapted base never saw the rows its
adapters are evaluated on. The revision is named
``<parent revision>-dapt-<recipe>-<8 hex>``, the hex a hash of the parent's sha256, the
texts' fingerprint and the settings: asking again for the same adaptation returns the
registered revision without training.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from modelops.config.catalog import ARTIFACT_PREFIX, CatalogEntry, append_revision
from modelops.config.errors import NotFoundError
from modelops.config.fingerprint import sha256_bytes, sha256_json
from modelops.config.progress import Emit
from modelops.config.recipe import LoadedRecipe
from modelops.domain.dataset import prepare_dataset, split_of
from modelops.domain.lineage import code_version, library_versions, now_iso
from modelops.domain.text import normalize_text
from modelops.lifecycle.dataset import source_reader
from modelops.lifecycle.platform import Platform
from modelops.ml.base_inspect import inspect_base
from modelops.ml.catalog import Catalog, ResolvedBase
from modelops.ml.mlm import MlmResult, MlmSettings, continue_mlm

log = logging.getLogger(__name__)


def domain_texts(
    platform: Platform, loaded: LoadedRecipe, max_production: int
) -> tuple[list[str], dict[str, int]]:
    """The recipe's unlabelled texts: its data's train and validation rows, then the newest
    ``max_production`` texts of its production log; test-split texts left out."""
    data = loaded.recipe.data
    frame = prepare_dataset(loaded, read=source_reader(platform)).frame
    texts = frame.loc[frame["split"] != "test", "text"].tolist()
    stats = {"data_texts": len(texts), "data_test_excluded": int((frame["split"] == "test").sum())}
    production: list[str] = []
    if max_production > 0:
        logged = platform.production_log.predictions(loaded.name, newest=True, limit=max_production)
        production = [t for t in logged["text"].tolist() if isinstance(t, str) and t.strip()]
    kept = [
        t
        for t in production
        if split_of(
            sha256_bytes(normalize_text(t).encode("utf-8")),
            data.validation_fraction,
            data.test_fraction,
        )
        != "test"
    ]
    stats.update(production_texts=len(kept), production_test_excluded=len(production) - len(kept))
    return texts + kept, stats


def adapt_base(
    platform: Platform,
    loaded: LoadedRecipe,
    settings: MlmSettings,
    *,
    base: str | None = None,
    max_production: int = 5000,
    emit: Emit = log.info,
) -> dict[str, Any]:
    """Adapt ``base`` (default: the recipe's base) to the recipe's texts; store and
    register it. Returns ``{"entry": ..., "created": bool, "result": ...}``."""
    parent = platform.resolve_base(base or loaded.recipe.base_model)
    texts, stats = domain_texts(platform, loaded, max_production)
    fingerprint, revision = _revision(parent, loaded, settings, texts)
    ref = f"{parent.entry.name}@{revision}"
    try:
        entry = platform.catalog.get(ref)
    except NotFoundError:
        entry = None
    if entry is not None:
        emit(f"{ref} is already registered (the same parent, texts and settings)")
        return {"entry": entry, "created": False, "result": None}
    emit(
        f"adapting {parent.entry.ref} to {len(texts)} texts of recipe {loaded.name} "
        f"({stats}), {settings.steps} steps"
    )
    threads = platform.settings.torch_threads
    with tempfile.TemporaryDirectory(prefix="dapt-") as tmp:
        out = Path(tmp) / "base"
        result = continue_mlm(parent.path, texts, out, settings, threads=threads, emit=emit)
        measured = inspect_base(out)
        stored = platform.store.put_dir(f"base_models/{parent.entry.name}/{revision}", out)
    lineage = {
        "kind": "domain_adaptive_pretraining",
        "parent": {"ref": parent.entry.ref, "sha256": parent.sha256},
        "recipe": loaded.name,
        "recipe_fingerprint": loaded.fingerprint(),
        "data_fingerprint": fingerprint,
        "texts": stats,
        **asdict(settings),
        "torch_threads": threads,
        **_training_record(result),
        "artifact_sha256": stored.sha256,
        "code_version": code_version(),
        "libraries": library_versions(),
    }
    entry = _adapted_entry(parent, revision, loaded, settings, stored.uri, measured, lineage)
    path = platform.settings.catalog_path
    append_revision(path, entry)
    platform.catalog = Catalog.load(path)
    emit(
        f"registered {entry.ref} (sha256 {entry.sha256}, {stored.uri}); masked-LM loss "
        f"{result.eval_loss_before:.4f} -> {result.eval_loss_after:.4f}"
    )
    return {"entry": entry, "created": True, "result": asdict(result) | {"directory": None}}


def _revision(
    parent: ResolvedBase, loaded: LoadedRecipe, settings: MlmSettings, texts: list[str]
) -> tuple[str, str]:
    """The texts' fingerprint and the revision name ``<parent revision>-dapt-<recipe>-<8
    hex>``, the hex a hash of the parent's sha256, that fingerprint and the settings."""
    fingerprint = sha256_json(sorted({sha256_bytes(normalize_text(t).encode()) for t in texts}))
    identity = sha256_json(
        {"parent": parent.sha256, "texts": fingerprint, "settings": asdict(settings)}
    )
    revision = f"{parent.entry.revision}-dapt-{loaded.name.replace('_', '-')}-{identity[:8]}"
    return fingerprint, revision


def _training_record(result: MlmResult) -> dict[str, Any]:
    """What the lineage keeps of the masked-LM run: its head and losses, its time."""
    return {
        "head": result.head,
        "eval_loss_before": round(result.eval_loss_before, 6),
        "eval_loss_after": round(result.eval_loss_after, 6),
        "train_seconds": round(result.seconds, 1),
    }


def _adapted_entry(
    parent: ResolvedBase,
    revision: str,
    loaded: LoadedRecipe,
    settings: MlmSettings,
    stored_uri: str,
    measured: dict[str, Any],
    lineage: dict[str, Any],
) -> CatalogEntry:
    """The catalog entry of the adapted base: an ``artifact:`` location, the parent's
    pooling and licence, the measured fields, the lineage."""
    return CatalogEntry(
        name=parent.entry.name,
        revision=revision,
        location=f"{ARTIFACT_PREFIX}{stored_uri}",
        pooling=parent.entry.pooling,
        **measured,
        license=parent.entry.license,
        source=f"modelops base adapt: {parent.entry.ref} continued on recipe {loaded.name}'s "
        "texts (masked LM)",
        description=f"{parent.entry.ref} adapted to {loaded.name} ({settings.steps} MLM steps)",
        lineage=lineage,
        registered_at=now_iso(),
    )
