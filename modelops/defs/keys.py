"""The asset keys and definition names of one recipe group, written once.

Every place that names a recipe's assets (the group factory, the retraining job, the
sensors, the backfill launcher, the demo scenario) takes them from :class:`RecipeKeys`.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

# Run tags the platform sets and reads (the UI filters runs by them).
TAG_REASON = "modelops/reason"
"""Why a sensor or schedule launched the run."""
TAG_MODE = "modelops/mode"
"""``full`` or ``incremental``: how the adapter asset trains."""
TAG_LANDING = "modelops/landing"
"""The recipe whose landing folder a batch scoring run empties."""
TAG_DRIFT_EVENT = "modelops/drift_report_event"
"""The drift report materialization that launched a retraining run."""
TAG_REPORT = "modelops/report"
"""That drift report's HTML."""
TAG_TAXONOMY = "modelops/taxonomy"
"""``<taxonomy>.<version>`` of a taxonomy backfill."""
TAG_BASE = "modelops/base"
"""The base revision (``name@revision``) a re-adaptation run moves a recipe to."""
TAG_TEACHER = "modelops/teacher_adapter"
"""The teacher champion whose change launched a student's distillation."""
TAG_TRAINING = "modelops/training"
"""On every run that trains (the retraining job, ``modelops backfill``): the queued run
coordinator caps how many run at once (``docker/dagster.yaml``)."""


@dataclass(frozen=True)
class RecipeKeys:
    """``RecipeKeys.of("demo").adapter == AssetKey(["demo", "adapter"])``, and the names of
    the recipe's job and schedule."""

    recipe: str

    @classmethod
    def of(cls, recipe: str) -> RecipeKeys:
        return cls(recipe)

    def _key(self, asset: str) -> dg.AssetKey:
        return dg.AssetKey([self.recipe, asset])

    @property
    def training_dataset(self) -> dg.AssetKey:
        return self._key("training_dataset")

    @property
    def mapped_candidate(self) -> dg.AssetKey:
        return self._key("mapped_candidate")

    @property
    def adapter(self) -> dg.AssetKey:
        return self._key("adapter")

    @property
    def evaluation(self) -> dg.AssetKey:
        return self._key("evaluation")

    @property
    def champion(self) -> dg.AssetKey:
        return self._key("champion")

    @property
    def batch_scoring(self) -> dg.AssetKey:
        return self._key("batch_scoring")

    @property
    def drift_report(self) -> dg.AssetKey:
        return self._key("drift_report")

    @property
    def training(self) -> tuple[dg.AssetKey, ...]:
        """The partitioned assets a taxonomy-version backfill or a retraining run
        materializes, in graph order."""
        return (
            self.training_dataset,
            self.mapped_candidate,
            self.adapter,
            self.evaluation,
            self.champion,
        )

    # Names of the recipe's other definitions (job, schedule).
    @property
    def retrain_job(self) -> str:
        return f"{self.recipe}__retrain"

    @property
    def retrain_schedule(self) -> str:
        return f"{self.recipe}__periodic_retrain"


# The sensors over every recipe (``defs/sensors/``): one per kind of event.
LANDING_SENSOR = "landing_files"
"""Files waiting in a recipe's landing folder -> that recipe's ``batch_scoring``."""
WINDOW_SENSOR = "production_windows"
"""A recipe's ``monitoring.window_size`` new production rows -> its ``drift_report``."""
DRIFT_SENSOR = "drift_retraining"
"""A recipe's drift report whose policy says retrain -> its retraining job."""
TEACHER_SENSOR = "teacher_champions"
"""A teacher recipe's new serving champion -> its students' retraining jobs."""
