"""Entry point for Dagster: ``dagster dev -m modelops.definitions`` or ``workspace.yaml``."""

from modelops.orchestration.definitions import build_definitions
from modelops.settings import Settings

defs = build_definitions(Settings.from_env())
