"""Every recipe file in the recipes folder (``MODELOPS_RECIPES``), one asset group each,
and the ``base_models`` sensor over them (``defs/bases.py``)."""

import dagster as dg

from modelops.config.recipe import load_recipes
from modelops.config.settings import Settings
from modelops.defs.bases import build_base_sensor
from modelops.defs.recipe.group import build_recipe_group


def build_recipe_groups(settings: Settings) -> dg.Definitions:
    """Read every recipe in ``settings.recipes_dir``; a bad one fails the load, naming its
    file and field, which the Dagster UI shows on the code location."""
    recipes = load_recipes(settings.recipes_dir)
    return dg.Definitions.merge(
        *[build_recipe_group(loaded) for loaded in recipes],
        dg.Definitions(sensors=[build_base_sensor(settings, recipes)] if recipes else []),
    )


@dg.definitions
def recipes() -> dg.Definitions:
    return build_recipe_groups(Settings.from_env())
