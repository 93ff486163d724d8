"""Catalog changes as steps: register a base revision (measured, not typed in), move an
alias, and list the revisions with the recipes that follow them. ``modelops base`` calls
these; the catalog file stays the reviewable record (docs/base-models.md)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelops.config.catalog import (
    PARTS_LOCATION,
    ArchivePart,
    CatalogEntry,
    append_revision,
    entry_document,
    move_alias,
)
from modelops.config.errors import InputError
from modelops.config.progress import Emit
from modelops.config.recipe import load_recipes
from modelops.domain.lineage import now_iso
from modelops.lifecycle.platform import Platform
from modelops.ml.base_inspect import inspect_base
from modelops.ml.base_parts import join_digest, locate_part
from modelops.ml.catalog import Catalog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewRevision:
    """What a person says about a revision; everything else is measured."""

    name: str
    revision: str
    location: str | None = None
    """A directory, ``package:<module>``, ``s3://...`` or ``artifact:<uri>``; None with parts."""
    parts: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    pooling: str = "mean"
    license: str = ""
    source: str = ""
    description: str = ""
    lineage: dict[str, Any] | None = None


def register_base(platform: Platform, new: NewRevision, emit: Emit = log.info) -> CatalogEntry:
    """Measure the model ``new`` points at and add it to the catalog file as a revision."""
    path = platform.settings.catalog_path
    if (new.location is None) == (not new.parts):
        raise InputError(None, "location", "give either a location or the archive's parts")
    ref = f"{new.name}@{new.revision}"
    existing = {r for e in platform.catalog.entries for r in platform.catalog.refs_to(e)}
    for taken in (ref, *(f"{new.name}@{a}" for a in new.aliases)):
        if taken in existing:
            raise InputError(path, "models", f"{taken} is already in the catalog")
    if new.location and new.location.startswith(("s3://", "artifact:")):
        raise InputError(
            None,
            "location",
            "an s3:// or artifact: model is fetched by its "
            "hash: register a local copy, or write its entry with its sha256",
        )
    fields: dict[str, Any] = {"location": new.location}
    if new.parts:
        files = [locate_part(p, i, Path.cwd()) for i, p in enumerate(new.parts)]
        emit(f"hashing {len(files)} parts of {ref}")
        whole, each = join_digest(files)
        sources = [
            p if p.startswith("dist:") else str(Path(p).expanduser().absolute()) for p in new.parts
        ]
        fields = {
            "location": PARTS_LOCATION,
            "archive_sha256": whole,
            "parts": tuple(
                ArchivePart(source=s, sha256=h) for s, h in zip(sources, each, strict=True)
            ),
        }
    elif not (new.location.startswith(("package:", "s3://", "artifact:"))):
        fields["location"] = str(Path(new.location).expanduser().absolute())
    provisional = CatalogEntry(name=new.name, revision=new.revision, pooling=new.pooling, **fields)
    resolved = Catalog([provisional], source=str(path)).resolve(
        provisional.ref, **platform.base_sources()
    )
    emit(f"inspecting {resolved.path}")
    measured = inspect_base(resolved.path)
    entry = CatalogEntry(
        **{**provisional.model_dump(exclude_defaults=True), **measured},
        aliases=tuple(new.aliases),
        license=new.license,
        source=new.source,
        description=new.description,
        lineage=new.lineage,
        registered_at=now_iso(),
    )
    append_revision(path, entry)
    platform.catalog = Catalog.load(path)
    emit(f"registered {entry.ref} (sha256 {entry.sha256}) in {path}")
    return entry


def alias_base(platform: Platform, target: str, revision: str) -> dict[str, Any]:
    """Point ``name@alias`` (``target``) at ``name@revision``; one change of the catalog
    file. Returns ``{alias, from, to, recipes}`` (the recipes that follow it)."""
    name, sep, alias = target.partition("@")
    if not sep or not name or not alias:
        raise InputError(None, "alias", f"{target!r} is not NAME@ALIAS")
    revision = revision.split("@", 1)[1] if revision.startswith(f"{name}@") else revision
    path = platform.settings.catalog_path
    if not path.exists():
        raise InputError(path, None, "no catalog file to change (register a revision first)")
    previous = move_alias(path, name, alias, revision)
    platform.catalog = Catalog.load(path)
    followers = platform.catalog.followers(_recipes(platform), target)
    return {
        "alias": target,
        "from": None if previous is None else f"{name}@{previous}",
        "to": f"{name}@{revision}",
        "recipes": [r["recipe"] for r in followers],
    }


def list_bases(platform: Platform) -> dict[str, Any]:
    """Every revision with its aliases and the recipes whose reference resolves to it."""
    catalog = platform.catalog
    followers = catalog.followers(_recipes(platform))
    revisions = []
    for entry in catalog.entries:
        doc = entry_document(entry)
        doc["ref"] = entry.ref
        doc["recipes"] = [
            f"{r['recipe']} ({r['base_model']})" for r in followers if r["resolves_to"] == entry.ref
        ]
        revisions.append(doc)
    return {"catalog": catalog.source, "revisions": revisions, "recipes": followers}


def _recipes(platform: Platform) -> Sequence[Any]:
    directory = platform.settings.recipes_dir
    return load_recipes(directory) if directory.is_dir() else []
