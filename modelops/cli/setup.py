"""``modelops init``: prepare the embedded defaults (Dagster home, registry schema).

The only command that migrates the registry's schema (the deployment's init job runs
it); every other process refuses a database that is not at head, naming this command.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from modelops.config.settings import Settings

DAGSTER_YAML = """\
# Written by `modelops init`. The embedded default instance: SQLite under this folder.
# For production, point storage at PostgreSQL (dagster-postgres); see docs/operations.md.
telemetry:
  enabled: false
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "init",
        help="create .modelops/ (Dagster home) if missing and create or migrate the "
        "registry schema (the only command that migrates it)",
    )
    parser.add_argument(
        "--dagster-home",
        type=Path,
        default=None,
        help="Dagster home (default: <MODELOPS_HOME>/dagster)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from modelops.stores.db.engine import masked_url, migrate

    settings = Settings.from_env()
    dagster_home = (
        args.dagster_home or settings.dagster_home or settings.home / "dagster"
    ).absolute()
    dagster_home.mkdir(parents=True, exist_ok=True)
    config = dagster_home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML, encoding="utf-8")
    revision = migrate(settings.database_url, what="registry")
    added = _sync_partitions(dagster_home, settings)
    if "://" not in settings.artifacts_uri:
        Path(settings.artifacts_uri).mkdir(parents=True, exist_ok=True)
    print(
        f"modelops home {settings.home}; registry {masked_url(settings.database_url)}; "
        f"schema at revision {revision}; "
        f"artifacts {settings.artifacts_uri}; dagster home {dagster_home}"
    )
    for name, versions in added.items():
        print(f"registered partitions {name}: {', '.join(versions)}")
    return 0


def _sync_partitions(dagster_home: Path, settings: Settings) -> dict:
    """Register every taxonomy version on disk, and each recipe's current base revision,
    as partitions (the sensors do the same while Dagster runs), so a first
    materialization can name its partition."""
    from dagster import DagsterInstance

    from modelops.config.recipe import load_recipes
    from modelops.defs.partitions import sync_partitions
    from modelops.ml.catalog import Catalog

    with DagsterInstance.from_config(str(dagster_home)) as instance:
        return sync_partitions(
            instance, load_recipes(settings.recipes_dir), Catalog.load(settings.catalog_path)
        )
