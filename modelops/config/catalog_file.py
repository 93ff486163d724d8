"""Changing the catalog file (``catalog/base_models.yaml``) as a reviewable text edit.

Both changes keep every comment and every other line of the file as it was, so a review
sees only what changed:

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

from modelops.config.catalog import DEFAULT_ENTRY, CatalogEntry, CatalogFile
from modelops.config.errors import InputError, NotFoundError
from modelops.config.yaml_files import read_yaml_mapping, validate_model

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
    block = yaml.safe_dump([entry_document(entry)], sort_keys=False, allow_unicode=True,
                           width=100)
    return "".join(" " * indent + line if line.strip() else line
                   for line in block.splitlines(keepends=True))


def move_alias(path: Path, name: str, alias: str, revision: str) -> str | None:
    """Point ``name@alias`` at ``name@revision``; returns the revision it left (None: new)."""
    text = path.read_text(encoding="utf-8")
    parsed = validate_model(CatalogFile, read_yaml_mapping(path), path)
    target = next((i for i, e in enumerate(parsed.models)
                   if e.name == name and e.revision == revision), None)
    if target is None:
        known = ", ".join(e.ref for e in parsed.models if e.name == name) or "none"
        raise NotFoundError(
            f"{path}: cannot move {name}@{alias} to {name}@{revision}: no such revision "
            f"(revisions of {name}: {known})"
        )
    if alias == revision or any(e.name == name and e.revision == alias for e in parsed.models):
        raise InputError(path, f"{name}@{alias}", "an alias may not be named like a revision")
    previous = next((i for i, e in enumerate(parsed.models)
                     if e.name == name and alias in e.aliases), None)
    if previous == target:
        return revision
    nodes = _entry_nodes(text, path)
    edits: list[tuple[int, int, str]] = []
    for index, aliases in ((target, [*parsed.models[target].aliases, alias]),
                           (previous, None)):
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
