"""Taxonomies: the versioned label set a recipe classifies into.

A taxonomy file (``taxonomies/<name>/<version>.yaml``) lists its labels::

    name: demo_intents
    version: v1
    labels:
      - name: card_lost
        description: The customer lost a card or it was stolen.

A later version names its ``previous`` version and a ``mapping`` from it (rename, merge,
split, retire, add); see ``modelops.domain.taxonomy_mapping`` for the format and its rules.
A first version has neither, and its fingerprint is what it was before they existed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from modelops.config.errors import InputError
from modelops.config.fingerprint import sha256_json
from modelops.config.yaml_files import read_yaml_mapping, validate_model

LABEL_PATTERN = r"^[a-z][a-z0-9_]*$"
VERSION_PATTERN = r"^v[0-9]+$"


def version_number(version: str) -> int:
    """``v12`` -> 12, for ordering versions; -1 for a name that is not ``v<number>``."""
    return int(version[1:]) if version[1:].isdigit() else -1


class Label(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=LABEL_PATTERN, max_length=64)
    description: str = ""


LabelName = Annotated[str, Field(pattern=LABEL_PATTERN, max_length=64)]


class SplitRule(BaseModel):
    """A rule of a split: its ``label`` wins when a keyword or a pattern matches the text."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    label: LabelName
    keywords: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()


class SplitSpec(BaseModel):
    """One old label split into several new ones; ``rules`` decide, the rest go to review."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    into: tuple[LabelName, ...] = Field(min_length=2)
    rules: tuple[SplitRule, ...] = ()


class MappingSpec(BaseModel):
    """The ``mapping`` section of a taxonomy version: how labels of ``previous`` map to it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    rename: dict[LabelName, LabelName] = Field(default_factory=dict)
    merge: dict[LabelName, tuple[LabelName, ...]] = Field(default_factory=dict)
    split: dict[LabelName, SplitSpec] = Field(default_factory=dict)
    retire: tuple[LabelName, ...] = ()
    add: tuple[LabelName, ...] = ()


class Taxonomy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=LABEL_PATTERN, max_length=64)
    version: str = Field(pattern=VERSION_PATTERN)
    labels: tuple[Label, ...] = Field(min_length=2)
    # Optional, and left out of dumps (so of the fingerprint) when absent, as in a first version.
    previous: str | None = Field(
        default=None, pattern=VERSION_PATTERN, exclude_if=lambda value: value is None
    )
    mapping: MappingSpec | None = Field(default=None, exclude_if=lambda value: value is None)

    @field_validator("labels")
    @classmethod
    def _unique(cls, labels: tuple[Label, ...]) -> tuple[Label, ...]:
        seen: set[str] = set()
        for i, label in enumerate(labels):
            if label.name in seen:
                raise ValueError(f"label [{i}] {label.name!r} is listed twice")
            seen.add(label.name)
        return labels

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels]

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def fingerprint(self) -> str:
        return sha256_json(self.model_dump(mode="json"))


def load_taxonomy(path: str | Path) -> Taxonomy:
    """Read and validate a taxonomy file; InputError names the file and field."""
    path = Path(path)
    taxonomy = validate_model(Taxonomy, read_yaml_mapping(path), path)
    if path.stem != taxonomy.version:
        raise InputError(
            path, "version", f"{taxonomy.version!r} does not match the file name {path.name!r}"
        )
    return taxonomy
