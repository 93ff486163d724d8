"""Every recipe file in the recipes folder (``MODELOPS_RECIPES``), one asset group each,
and the sensors over all of them: landing files, production windows, drift reports
(``defs/sensors/``) and base models (``defs/bases.py``)."""

import dagster as dg

from modelops.config.recipe_folder import RecipeFolder
from modelops.config.settings import Settings
from modelops.defs.bases import build_base_sensor
from modelops.defs.recipe.group import build_recipe_group
from modelops.defs.recipe.jobs import build_retrain_job
from modelops.defs.sensors.build import build_event_sensors


def build_recipe_groups(settings: Settings) -> dg.Definitions:
    """Read every recipe in ``settings.recipes_dir``; a bad one fails the load, naming its
    file and field, which the Dagster UI shows on the code location."""
    recipes = RecipeFolder.shared(settings.recipes_dir, settings.recipe_shard).load()
    jobs = {loaded.name: build_retrain_job(loaded) for loaded in recipes}
    sensors = build_event_sensors(recipes, jobs)
    return dg.Definitions.merge(
        *[build_recipe_group(loaded, jobs[loaded.name]) for loaded in recipes],
        dg.Definitions(
            sensors=sensors + ([build_base_sensor(settings, recipes)] if recipes else [])
        ),
    )


@dg.definitions
def recipes() -> dg.Definitions:
    return build_recipe_groups(Settings.from_env())
