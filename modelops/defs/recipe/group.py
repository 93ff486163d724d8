"""One recipe file, one asset group: the factory behind every recipe's definitions."""

import dagster as dg

from modelops.config.recipe import LoadedRecipe
from modelops.defs.recipe.production_assets import build_production_assets
from modelops.defs.recipe.schedules import build_retrain_schedule
from modelops.defs.recipe.training_assets import build_training_assets


def build_recipe_group(loaded: LoadedRecipe, job: dg.JobDefinition) -> dg.Definitions:
    """Group ``<recipe>``: the four training assets (partitioned by taxonomy version, the
    gates as blocking checks), batch scoring and the drift report; the retraining
    ``job`` (``jobs.build_retrain_job``), and its schedule when the recipe sets
    ``retraining.schedule``. The sensors watch every recipe at once
    (``defs/sensors/``). Keys and names: ``modelops.defs.keys``."""
    schedule = loaded.recipe.retraining.schedule
    return dg.Definitions(
        assets=build_training_assets(loaded) + build_production_assets(loaded),
        jobs=[job],
        schedules=[build_retrain_schedule(loaded, job)] if schedule else [],
    )
