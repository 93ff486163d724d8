"""Entry point for Dagster: ``dagster dev -m modelops.definitions`` or ``workspace.yaml``.

Every module of ``modelops/defs/`` is loaded by Dagster's folder walk (``[tool.dg]`` in
``pyproject.toml`` names it); ``modelops.defs.build.build_definitions(settings)`` builds the
same definitions from explicit settings, for tests and the demo.

``load_from_defs_folder`` reads ``[tool.dg]`` from the ``pyproject.toml`` one folder above
this package, which is there wherever modelops runs from its checkout (``make install``
installs it editable; ``make run`` and ``workspace.yaml`` run from it). A copy installed
without its checkout (a wheel in site-packages, a container image) has no such file: it
loads the same folder with ``dg.components.load_defs``, which is what
``load_from_defs_folder`` does once it has read the config.
"""

from pathlib import Path

import dagster as dg


def load(project_root: Path) -> dg.Definitions:
    """Every definition under ``modelops/defs/``; ``project_root`` holds ``pyproject.toml``
    when modelops runs from its checkout."""
    if (project_root / "pyproject.toml").is_file():
        return dg.load_from_defs_folder(project_root=project_root)
    import modelops.defs

    return dg.components.load_defs(modelops.defs, project_root=project_root)


@dg.definitions
def defs() -> dg.Definitions:
    return load(Path(__file__).resolve().parent.parent)
