"""The one ``Definitions`` object: an asset group per recipe file, and the resource."""

from __future__ import annotations

import dagster as dg

from modelops.config.recipe import load_recipes
from modelops.config.settings import Settings
from modelops.defs.recipe.production_assets import build_production_assets
from modelops.defs.recipe.sensors import (
    build_recipe_sensors,
    build_retrain_job,
    build_retrain_schedule,
    build_taxonomy_sensor,
)
from modelops.defs.recipe.training_assets import build_recipe_assets
from modelops.defs.resources import PlatformResource


def build_definitions(settings: Settings) -> dg.Definitions:
    """Read every recipe in ``settings.recipes_dir``; a bad one fails the load, naming
    its file and field, which the Dagster UI shows on the code location."""
    assets: list = []
    checks: list = []
    jobs: list = []
    sensors: list = [build_taxonomy_sensor(settings)]
    schedules: list = []
    for loaded in load_recipes(settings.recipes_dir):
        recipe_assets, recipe_checks = build_recipe_assets(loaded)
        assets += recipe_assets + build_production_assets(loaded)
        checks += recipe_checks
        job = build_retrain_job(loaded)
        jobs.append(job)
        sensors += build_recipe_sensors(loaded, job)
        if loaded.recipe.retraining.schedule:
            schedules.append(build_retrain_schedule(loaded, job))
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        resources={"platform": PlatformResource.from_settings(settings)},
    )
