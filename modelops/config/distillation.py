"""The recipe's ``distillation:`` section: a student recipe trains on a teacher recipe's
soft labels (docs/recipes.md#distillation, docs/concepts.md#distillation).

The teacher is another recipe of the same taxonomy: its champion of the taxonomy version
the student trains (or a pinned adapter). The fields that decide the weights (teacher,
temperature, alpha, production texts) are part of the recipe's fingerprint; the teacher
adapter and the texts chosen are recorded in the lineage.

:func:`check_teachers` checks what needs every recipe of the folder at once: the teacher
exists, shares the student's taxonomy name and version, and no chain of teachers loops.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from modelops.config.errors import InputError
from modelops.config.taxonomy import LABEL_PATTERN
from modelops.config.yaml_files import StrictSection

FIELD = "distillation.teacher"


class ProductionTexts(StrictSection):
    """Unlabelled texts of the production log the teacher labels for the student."""

    max_rows: int = Field(
        default=0,
        ge=0,
        le=1_000_000,
        description="the newest this many logged predictions are read (0: none); redacted, "
        "duplicate and held-out texts are left out of them",
    )
    since: datetime | None = Field(
        default=None, description="only predictions logged at or after this time"
    )
    source: Literal["student", "teacher"] = Field(
        default="student",
        description="whose production log: the student recipe's (the traffic it serves) "
        "or the teacher recipe's",
    )


class DistillationSettings(StrictSection):
    teacher: str = Field(pattern=LABEL_PATTERN, max_length=64, description="a recipe name")
    adapter_id: int | None = Field(
        default=None,
        gt=0,
        description="pin the teacher to this adapter of the teacher recipe (default: its "
        "champion of the student's taxonomy version); a pinned teacher is not followed",
    )
    temperature: float = Field(default=2.0, gt=0, le=20)
    alpha: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="weight of the soft-label term alpha*T^2*KL; the true-label "
        "cross-entropy gets 1 - alpha",
    )
    production_texts: ProductionTexts = ProductionTexts()
    """What production texts the teacher labels besides the training split."""

    @model_validator(mode="after")
    def _production_needs_soft_term(self) -> DistillationSettings:
        if self.alpha == 0 and self.production_texts.max_rows:
            raise ValueError(
                "production_texts.max_rows needs alpha > 0: with alpha 0 unlabelled texts "
                "add nothing to the loss"
            )
        return self


def check_teachers(
    recipes: Sequence[Any], elsewhere: Callable[[str], bool] = lambda name: False
) -> None:
    """Every ``distillation.teacher`` of ``recipes`` (``LoadedRecipe``s, the recipe module
    imports this one) names another recipe of the folder with the same taxonomy name and
    version, and no chain of teachers comes back to where it started. An InputError names
    the student's file and the field. ``elsewhere(name)``: the teacher is a recipe that was
    not read here (another code location's shard); only its existence is checked then."""
    by_name = {r.name: r for r in recipes}
    for loaded in recipes:
        section = loaded.recipe.distillation
        if section is None:
            continue
        teacher = by_name.get(section.teacher)
        if section.teacher == loaded.name:
            raise InputError(loaded.path, FIELD, "a recipe cannot be its own teacher")
        if teacher is None and elsewhere(section.teacher):
            continue
        if teacher is None:
            raise InputError(
                loaded.path, FIELD, f"no recipe named {section.teacher!r} in {loaded.path.parent}"
            )
        if teacher.taxonomy.ref != loaded.taxonomy.ref:
            raise InputError(
                loaded.path,
                FIELD,
                f"teacher {teacher.name!r} is labelled in {teacher.taxonomy.ref}, the student "
                f"in {loaded.taxonomy.ref}: the labels must be the same",
            )
        _check_no_cycle(loaded, by_name)


def _check_no_cycle(student: Any, by_name: dict[str, Any]) -> None:
    chain, current = [student.name], student
    while current.recipe.distillation is not None:
        name = current.recipe.distillation.teacher
        if name == student.name:
            raise InputError(
                student.path, FIELD, f"teachers form a cycle: {' -> '.join([*chain, name])}"
            )
        if name in chain or name not in by_name:
            return  # another recipe's cycle, or a missing teacher: reported for that one
        chain.append(name)
        current = by_name[name]
