"""Entry point for Dagster: ``dagster dev -m modelops.definitions`` or ``workspace.yaml``.

Every module of ``modelops/defs/`` is loaded by Dagster's folder walk (``[tool.dg]`` in
``pyproject.toml`` names it); ``modelops.defs.build.build_definitions(settings)`` builds the
same definitions from explicit settings, for tests and the demo.

``load_from_defs_folder`` finds ``pyproject.toml`` from the repository root, one folder
above this package. That holds wherever modelops runs: it is installed editable from its
checkout (``make install``) and run from it (``make run``, ``workspace.yaml``). A copy
installed without its checkout (a wheel in site-packages) would have no ``[tool.dg]`` to
find; it would load with ``dg.ComponentTree.from_module(modelops.defs, project_root)``
instead, which is what ``load_from_defs_folder`` does once it has read the config.
"""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent.parent)
