"""The distillation of a training run (the recipe's ``distillation:`` section): which
teacher adapter, which production texts (docs/concepts.md#distillation).

:func:`resolve_distillation` runs before the training: it finds the teacher (the teacher
recipe's champion of the taxonomy version being trained, or the pinned adapter) and
selects the production texts, so the training step can tell a finished run with the same
teacher and texts from a new one (:meth:`Distillation.identity`). The teacher's soft
labels are then computed and stored once (``modelops.lifecycle.soft_labels``).

Production texts never include a held-out text: a text equal to a validation or test
text of the dataset is left out, and so is any text whose hash would put it in a held-out
split (``domain.dataset.split_of``), so that feedback adding it to the data later cannot
make a test row of a text the student was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC

import pandas as pd

from modelops.config.distillation import DistillationSettings, ProductionTexts
from modelops.config.errors import ModelopsError
from modelops.config.fingerprint import sha256_bytes, sha256_json
from modelops.config.progress import Emit
from modelops.config.recipe import LoadedRecipe
from modelops.domain.dataset import PreparedDataset, split_of
from modelops.domain.text import clean_text, normalize_text
from modelops.lifecycle.mapped import is_mapped
from modelops.lifecycle.platform import Platform
from modelops.stores.registry_records import AdapterVersion

FIELD = "distillation.teacher"


@dataclass(frozen=True)
class ProductionSelection:
    """The production texts a distillation trains on, by prediction id (ascending), and
    why the other rows read were left out."""

    recipe: str
    ids: tuple[int, ...]
    texts: tuple[str, ...]
    left_out: dict = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        """The identity of the selection: its ids and texts."""
        return sha256_json([list(self.ids), [sha256_bytes(t.encode()) for t in self.texts]])

    def record(self, settings: ProductionTexts) -> dict:
        return {
            "source_recipe": self.recipe,
            "max_rows": settings.max_rows,
            "since": settings.since.isoformat() if settings.since else None,
            "count": len(self.ids),
            "first_id": self.ids[0] if self.ids else None,
            "last_id": self.ids[-1] if self.ids else None,
            "sha256": self.sha256,
            "left_out": dict(self.left_out),
        }


@dataclass(frozen=True)
class Distillation:
    """A distillation resolved for one training: the settings, the teacher adapter and
    the production texts."""

    settings: DistillationSettings
    teacher: AdapterVersion
    production: ProductionSelection

    def identity(self) -> dict:
        """What makes two distillations of one recipe and dataset train the same weights
        beyond the recipe's fingerprint: the teacher's weights and the texts chosen."""
        return {
            "teacher_weights_sha256": self.teacher.weights_sha256,
            "production_sha256": self.production.sha256,
        }


def recorded_identity(lineage: dict | None) -> dict | None:
    """:meth:`Distillation.identity` of a registered adapter's lineage (None: not distilled)."""
    record = (lineage or {}).get("distillation")
    if not record:
        return None
    return {
        "teacher_weights_sha256": record["teacher_weights_sha256"],
        "production_sha256": record["production_texts"]["sha256"],
    }


def resolve_distillation(
    platform: Platform,
    loaded: LoadedRecipe,
    version: str,
    dataset: PreparedDataset,
    emit: Emit,
) -> Distillation | None:
    """The teacher and production texts of a training of ``loaded``'s taxonomy
    ``version`` on ``dataset``; None when the recipe has no ``distillation`` section."""
    settings = loaded.recipe.distillation
    if settings is None:
        return None
    teacher = resolve_teacher(platform, loaded, version, dataset.labels)
    emit(
        f"distillation: teacher adapter {teacher.id} of recipe {teacher.recipe} "
        f"({teacher.base_model}, weights {teacher.weights_sha256[:12]})"
    )
    production = select_production(platform, loaded, dataset)
    if settings.production_texts.max_rows:
        emit(
            f"distillation: {len(production.ids)} production texts of {production.recipe} "
            f"(left out: {production.left_out})"
        )
    return Distillation(settings, teacher, production)


def resolve_teacher(
    platform: Platform, loaded: LoadedRecipe, version: str, labels: list[str]
) -> AdapterVersion:
    """The pinned adapter, else the teacher recipe's champion of ``version``: a trained
    adapter (not a mapped candidate) of that version whose labels are ``labels``."""
    settings = loaded.recipe.distillation
    name = settings.teacher
    registry = platform.registry
    if settings.adapter_id is not None:
        teacher = registry.get(settings.adapter_id)
        if teacher.recipe != name:
            raise _error(
                loaded, f"adapter {teacher.id} is of recipe {teacher.recipe!r}, not {name!r}"
            )
    else:
        teacher = registry.alias(name, "champion", taxonomy_version=version)
        if teacher is None:
            raise _error(
                loaded,
                f"recipe {name!r} has no champion of {version} to teach with: train and "
                "promote the teacher first",
            )
    if is_mapped(teacher):
        raise _error(
            loaded,
            f"adapter {teacher.id} of {name!r} is a mapped candidate (another version's "
            "weights): the teacher must be trained on this version",
        )
    if teacher.taxonomy_version != version:
        raise _error(
            loaded, f"adapter {teacher.id} is of {teacher.taxonomy_version}, not {version}"
        )
    taught = teacher.lineage.get("dataset", {}).get("labels") or []
    if set(taught) != set(labels):
        missing = sorted(set(labels) - set(taught)) or sorted(set(taught) - set(labels))
        raise _error(
            loaded,
            f"adapter {teacher.id}'s labels differ from the student's dataset (e.g. "
            f"{', '.join(missing[:5])}): the labels must be the same",
        )
    return teacher


def _error(loaded: LoadedRecipe, message: str) -> ModelopsError:
    return ModelopsError(f"{loaded.path}: {FIELD}: {message}")


def select_production(
    platform: Platform, loaded: LoadedRecipe, dataset: PreparedDataset
) -> ProductionSelection:
    """The newest ``max_rows`` predictions of the chosen recipe's log (at or after
    ``since``), less redacted, empty, over-long, held-out and duplicate texts (those of
    the training split among them), oldest first."""
    settings = loaded.recipe.distillation
    wanted = settings.production_texts
    recipe = loaded.name if wanted.source == "student" else settings.teacher
    if not wanted.max_rows:
        return ProductionSelection(recipe, (), ())
    rows = platform.production_log.predictions(recipe, limit=wanted.max_rows, newest=True)
    if wanted.since is not None and len(rows):
        since = wanted.since if wanted.since.tzinfo else wanted.since.replace(tzinfo=UTC)
        rows = rows[rows["at"] >= pd.Timestamp(since)]
    return _filter_rows(recipe, rows, loaded, dataset)


def _filter_rows(
    recipe: str, rows: pd.DataFrame, loaded: LoadedRecipe, dataset: PreparedDataset
) -> ProductionSelection:
    data = loaded.recipe.data
    frame = dataset.frame
    held = set(frame.loc[frame["split"] != "train", "text_sha256"])
    seen = set(frame.loc[frame["split"] == "train", "text_sha256"])
    ids, texts = [], []
    left = {"redacted": 0, "empty_or_too_long": 0, "held_out": 0, "duplicate": 0}
    for row_id, raw in zip(rows["id"].tolist(), rows["text"].tolist(), strict=True):
        if not isinstance(raw, str):
            left["redacted"] += 1
            continue
        text = clean_text(raw)
        if not text or len(text) > data.max_text_chars or "\0" in text:
            left["empty_or_too_long"] += 1
            continue
        digest = sha256_bytes(normalize_text(text).encode("utf-8"))
        split = split_of(digest, data.validation_fraction, data.test_fraction)
        if digest in held or split != "train":
            left["held_out"] += 1
            continue
        if digest in seen:
            left["duplicate"] += 1
            continue
        seen.add(digest)
        ids.append(int(row_id))
        texts.append(text)
    return ProductionSelection(recipe, tuple(ids), tuple(texts), left)
