"""The whole code location from explicit settings, for tests and the demo scenario.

``modelops.definitions`` loads the same pieces through ``dg.load_from_defs_folder``: each
module of ``defs/`` that contributes definitions ends with a ``@dg.definitions`` function
calling the factory below with ``Settings.from_env()`` (``recipes.py``, ``taxonomy.py``),
or with the environment's resources (``resources.py``). The other modules hold factories
and helpers only, so the folder walk finds nothing else in them.
"""

import dagster as dg

from modelops.config.settings import Settings
from modelops.defs.recipes import build_recipe_groups
from modelops.defs.resources import build_resources
from modelops.defs.taxonomy import build_taxonomy_definitions


def build_definitions(settings: Settings) -> dg.Definitions:
    """An asset group per recipe file, the taxonomy sensor, and the resources with the
    settings' values."""
    return dg.Definitions.merge(
        build_recipe_groups(settings),
        build_taxonomy_definitions(settings),
        dg.Definitions(resources=build_resources(settings)),
    )
