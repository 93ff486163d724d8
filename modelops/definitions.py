"""Entry point for Dagster: ``dagster dev -m modelops.definitions`` or ``workspace.yaml``."""

from modelops.config.settings import Settings
from modelops.defs.build import build_definitions

defs = build_definitions(Settings.from_env())
