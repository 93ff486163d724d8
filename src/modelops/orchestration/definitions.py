"""The one ``Definitions`` object: an asset group per recipe file, and the resource."""

from __future__ import annotations

import dagster as dg

from modelops.core.recipe import load_recipes
from modelops.orchestration.assets import build_recipe_assets
from modelops.orchestration.resources import PlatformResource
from modelops.orchestration.sensors import build_taxonomy_sensor
from modelops.settings import Settings


def build_definitions(settings: Settings) -> dg.Definitions:
    """Read every recipe in ``settings.recipes_dir``; a bad one fails the load, naming
    its file and field, which the Dagster UI shows on the code location."""
    assets: list = []
    checks: list = []
    for loaded in load_recipes(settings.recipes_dir):
        recipe_assets, recipe_checks = build_recipe_assets(loaded)
        assets += recipe_assets
        checks += recipe_checks
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        sensors=[build_taxonomy_sensor(settings)],
        resources={"platform": PlatformResource.from_settings(settings)},
    )
