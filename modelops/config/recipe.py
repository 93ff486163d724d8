"""Recipes: one YAML file per customization, the interface of the platform.

A recipe names the task, the data, the taxonomy, the base model (through the catalog,
never by path), the PEFT method and its settings, the training settings and the
evaluation gates. ``docs/recipes.md`` is the reference for every field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from modelops.config.compute import ComputeSettings
from modelops.config.distillation import DistillationSettings, check_teachers
from modelops.config.errors import InputError
from modelops.config.fingerprint import sha256_json
from modelops.config.gates import GateSettings
from modelops.config.monitoring import MonitoringSettings, RetrainingSettings
from modelops.config.taxonomy import LABEL_PATTERN, Taxonomy, load_taxonomy, version_number
from modelops.config.taxonomy_changes import TaxonomyChangeSettings
from modelops.config.yaml_files import StrictSection, read_yaml_mapping, validate_model

BASE_MODEL_PATTERN = r"^[a-z0-9][a-z0-9_.-]*@[A-Za-z0-9_.-]+$"
ADDED_SETTINGS = (("training", "layer_decay", 1.0), ("training", "contrastive", None))
"""Settings added after recipes were fingerprinted: left out of the fingerprint while at
their default (off), so a recipe that does not use them keeps its fingerprint."""


class DataSource(StrictSection):
    path: str = Field(min_length=1, description="CSV or Parquet file: a local path or s3:// URI")
    format: Literal["csv", "parquet"] | None = None

    @property
    def resolved_format(self) -> str:
        if self.format:
            return self.format
        return "parquet" if self.path.lower().endswith((".parquet", ".pq")) else "csv"


class DataSettings(StrictSection):
    sources: tuple[DataSource, ...] = Field(min_length=1)
    text_column: str = "text"
    label_column: str = "label"
    max_rows: int = Field(default=1_000_000, gt=0)
    max_text_chars: int = Field(default=2_000, gt=0)
    validation_fraction: float = Field(default=0.1, ge=0.0, lt=0.5)
    test_fraction: float = Field(default=0.2, gt=0.0, lt=0.5)


class AdapterSettings(StrictSection):
    """How the encoder adapts: ``lora`` (a PEFT LoRA adapter; the other fields are its
    settings) or ``full`` (every encoder weight trains; the artifact is the whole encoder,
    ``modelops.ml.adapter_methods``). LoRA fields set to other than their defaults are
    refused with ``full``."""

    method: Literal["lora", "full"] = "lora"
    r: int = Field(default=8, gt=0, le=256)
    alpha: float = Field(default=16.0, gt=0)
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    target_modules: tuple[str, ...] = Field(default=("query", "value"), min_length=1)

    @model_validator(mode="after")
    def _lora_fields_only_for_lora(self) -> AdapterSettings:
        fields = type(self).model_fields
        written = [k for k in fields if k != "method" and getattr(self, k) != fields[k].default]
        if self.method == "full" and written:
            raise ValueError(
                f"LoRA settings {', '.join(written)} are not used by method 'full' (remove them)"
            )
        return self


class ContrastiveSettings(StrictSection):
    """A contrastive stage before the head (SetFit-style, ``modelops.ml.contrastive``):
    pairs of training rows (same label: positive, other label: negative) pull the pooled
    embeddings of a label together and push other labels apart, updating the trainable
    encoder weights (LoRA or full); the probe head is then fitted on the new embeddings."""

    pairs_per_row: int = Field(default=4, gt=0, le=64)
    positive_fraction: float = Field(default=0.5, gt=0.0, lt=1.0)
    epochs: int = Field(default=1, gt=0, le=20)
    learning_rate: float | None = Field(
        default=None, gt=0, lt=1, description="default: training.learning_rate"
    )
    batch_size: int | None = Field(
        default=None, gt=1, le=4096, description="pairs per step; default: training.batch_size"
    )
    margin: float = Field(
        default=0.0,
        ge=-1.0,
        lt=1.0,
        description="a negative pair costs nothing once its cosine similarity is below it",
    )


class HeadSettings(StrictSection):
    pooling: Literal["mean", "cls"] | None = Field(
        default=None, description="default: the pooling the base model was trained with (catalog)"
    )
    init: Literal["probe", "random"] = "probe"
    probe_c: float = Field(default=10.0, gt=0, description="inverse L2 strength of the probe")


class TrainingSettings(StrictSection):
    epochs: int = Field(default=3, gt=0, le=100)
    learning_rate: float = Field(default=1e-3, gt=0, lt=1)
    head_learning_rate: float | None = Field(default=None, gt=0, lt=1)
    batch_size: int = Field(default=32, gt=0, le=4096)
    eval_batch_size: int = Field(default=128, gt=0, le=4096)
    max_length: int = Field(default=64, ge=8, le=512)
    seed: int = 13
    weight_decay: float = Field(default=0.0, ge=0)
    warmup_ratio: float = Field(default=0.06, ge=0, lt=1)
    select_best: bool = Field(
        default=True,
        description="choose the kept weights among the starting point (probe head / warm "
        "start) and every epoch on the validation split, by ``selection``; off: the last epoch",
    )
    selection: Literal["bootstrap", "best"] = Field(
        default="bootstrap",
        description="bootstrap: the last epoch unless an earlier one beats it on validation "
        "accuracy with selection_confidence (paired bootstrap); best: highest validation "
        "macro-F1 (follows the noise of small validation splits)",
    )
    selection_confidence: float = Field(default=0.95, ge=0.5, lt=1.0)
    schedule: Literal["linear", "cosine"] = Field(
        default="linear", description="learning-rate decay after the warmup"
    )
    label_smoothing: float = Field(default=0.0, ge=0.0, lt=1.0)
    layer_decay: float = Field(
        default=1.0,
        gt=0.0,
        le=1.0,
        description="layer-wise learning-rate decay: layer i of L trains at "
        "learning_rate * layer_decay ** (L - i), the embeddings (i = 0) lowest; 1: off",
    )
    contrastive: ContrastiveSettings | None = Field(
        default=None, description="a contrastive stage before the head; default off"
    )


class ServingSettings(StrictSection):
    """How ``modelops serve`` treats the recipe (docs/serving.md)."""

    shadow: bool = Field(
        default=False,
        description="the newest candidate also scores live traffic, off the request path; "
        "its agreement with the champion is logged as promotion evidence",
    )


class Recipe(StrictSection):
    name: str = Field(pattern=LABEL_PATTERN, max_length=64)
    description: str = ""
    task: Literal["text_classification"] = "text_classification"
    data: DataSettings
    taxonomy: str = Field(min_length=1, description="path of the taxonomy version file")
    base_model: str = Field(
        pattern=BASE_MODEL_PATTERN, description="catalog reference name@revision"
    )
    adapter: AdapterSettings = AdapterSettings()
    head: HeadSettings = HeadSettings()
    training: TrainingSettings = TrainingSettings()
    gates: GateSettings = GateSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    retraining: RetrainingSettings = RetrainingSettings()
    compute: ComputeSettings = ComputeSettings()
    taxonomy_changes: TaxonomyChangeSettings = TaxonomyChangeSettings()
    serving: ServingSettings = ServingSettings()
    distillation: DistillationSettings | None = Field(
        default=None, description="train on a teacher recipe's soft labels"
    )

    @model_validator(mode="after")
    def _columns_differ(self) -> Recipe:
        if self.data.text_column == self.data.label_column:
            raise ValueError("data.text_column and data.label_column must differ")
        return self


@dataclass(frozen=True)
class LoadedRecipe:
    """A validated recipe with its file, resolved paths and taxonomy."""

    recipe: Recipe
    path: Path
    taxonomy: Taxonomy
    taxonomy_path: Path

    @property
    def name(self) -> str:
        return self.recipe.name

    @property
    def taxonomies_root(self) -> Path:
        """The folder holding ``<taxonomy name>/<version>.yaml`` files."""
        return self.taxonomy_path.parent.parent

    @property
    def data_version(self) -> str:
        """The taxonomy version the source data is labelled in."""
        return self.taxonomy.version

    def landing_root(self, home: Path) -> Path | str:
        """Batch files go to ``<root>/<recipe>/incoming/``: a local directory, or an
        ``s3://bucket/prefix`` URI, kept as a string."""
        configured = self.recipe.monitoring.landing
        if not configured:
            return home / "landing"
        location = resolve_location(configured, self.path.parent)
        return location if location.startswith("s3://") else Path(location)

    def taxonomy_versions(self) -> list[str]:
        """This version and every later one on disk, ordered by number."""
        start = version_number(self.data_version)
        found = [p.stem for p in self.taxonomy_path.parent.glob("v*.yaml")]
        return sorted((v for v in found if version_number(v) >= start), key=version_number)

    def source_uris(self) -> list[str]:
        return [resolve_location(s.path, self.path.parent) for s in self.recipe.data.sources]

    def fingerprint(self) -> str:
        """What decides the weights of a full training: not description, gates,
        monitoring, retraining, compute, taxonomy_changes or serving (an incremental run
        records its warm start apart, a distillation its teacher adapter and texts). A
        recipe without ``distillation`` hashes as before the section existed."""
        excluded = {
            "description",
            "gates",
            "monitoring",
            "retraining",
            "compute",
            "taxonomy_changes",
            "serving",
        }
        if self.recipe.distillation is None:
            excluded.add("distillation")
        body = self.recipe.model_dump(mode="json", exclude=excluded)
        for section, key, default in ADDED_SETTINGS:  # off: the fingerprint of before
            if body[section][key] == default:
                del body[section][key]
        body["taxonomy"] = self.taxonomy.fingerprint()
        body["data"]["sources"] = self.source_uris()
        return sha256_json(body)

    def snapshot(self) -> dict:
        """The recipe as a JSON-able dict, for manifests and ``reproduce``."""
        return {
            "recipe": self.recipe.model_dump(mode="json"),
            "path": str(self.path),
            "taxonomy": self.taxonomy.model_dump(mode="json"),
        }


def resolve_location(location: str, base: Path) -> str:
    """``s3://`` URIs stay as they are; relative paths resolve against ``base``."""
    if location.startswith("s3://"):
        return location
    path = Path(location)
    return str(path if path.is_absolute() else (base / path).resolve())


def load_recipe(
    path: str | Path, *, taxonomies: dict[Path, Taxonomy] | None = None
) -> LoadedRecipe:
    """Read and validate a recipe and its taxonomy. Errors name the file and field.

    ``taxonomies``: the taxonomy files already read in this pass, by path (recipes on the
    same taxonomy version share one read); it is filled in."""
    path = Path(path).absolute()
    recipe = validate_model(Recipe, read_yaml_mapping(path), path)
    _check_relative_paths(recipe, path)
    if recipe.name != path.stem:
        raise InputError(path, "name", f"{recipe.name!r} must match the file name {path.stem!r}")
    if recipe.distillation is not None and recipe.distillation.teacher == recipe.name:
        raise InputError(path, "distillation.teacher", "a recipe cannot be its own teacher")
    taxonomy_path = Path(resolve_location(recipe.taxonomy, path.parent))
    if not taxonomy_path.is_file():
        raise InputError(path, "taxonomy", f"taxonomy file {taxonomy_path} not found")
    taxonomy = None if taxonomies is None else taxonomies.get(taxonomy_path)
    if taxonomy is None:
        taxonomy = load_taxonomy(taxonomy_path)
        if taxonomies is not None:
            taxonomies[taxonomy_path] = taxonomy
    return LoadedRecipe(recipe=recipe, path=path, taxonomy=taxonomy, taxonomy_path=taxonomy_path)


def _check_relative_paths(recipe: Recipe, path: Path) -> None:
    """A relative location in a recipe stays inside its workspace (the folder above the
    recipes folder: ``../data/...``, ``../taxonomies/...``); absolute paths and ``s3://``
    URIs are the operator's explicit choice."""
    root = path.parent.parent.resolve()
    fields = [(f"data.sources[{i}].path", s.path) for i, s in enumerate(recipe.data.sources)]
    fields += [("taxonomy", recipe.taxonomy), ("monitoring.landing", recipe.monitoring.landing)]
    for where, location in fields:
        if not location or location.startswith("s3://") or Path(location).is_absolute():
            continue
        resolved = Path(resolve_location(location, path.parent))
        if not resolved.is_relative_to(root):
            raise InputError(
                path,
                where,
                f"{location!r} leads outside the workspace {root} (use an "
                "absolute path to read from elsewhere)",
            )


def load_recipes(directory: str | Path) -> list[LoadedRecipe]:
    """Every ``*.yaml`` recipe in ``directory``, sorted by name. The first bad one raises."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(directory, None, "recipes directory not found")
    taxonomies: dict[Path, Taxonomy] = {}
    recipes = [load_recipe(p, taxonomies=taxonomies) for p in sorted(directory.glob("*.yaml"))]
    check_teachers(recipes)
    return recipes
