"""The code location as Dagster loads it (``modelops.definitions.defs``, through
``load_from_defs_folder``), described and compared with a checked-in snapshot: a change to
asset keys, groups, partitions, checks, sensors, jobs, schedules or resources shows up here
in review. Regenerate after an intended change, and review the snapshot's diff:

    MODELOPS_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest \
        modelops_tests/defs/test_definitions_snapshot.py
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
from pathlib import Path

import dagster as dg
import pytest

from modelops.config.settings import Settings
from modelops.defs.build import build_definitions
from modelops.defs.resources import ProductionLogResource, RegistryResource
from modelops_tests.fixtures.workspace import make_workspace

REPO = Path(__file__).resolve().parents[2]
SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"
UPDATE = "MODELOPS_UPDATE_SNAPSHOTS"
PASSWORD = "pw-4f9c2e-not-for-the-ui"
DATABASE_URL = f"postgresql+psycopg2://modelops:{PASSWORD}@db.invalid:5432/modelops"
S3_ENDPOINT = "http://s3-endpoint.invalid:9000"
RECIPE = {"retraining": {"schedule": "0 3 * * 1"}}


@pytest.fixture
def workspace_env(tiny_catalog, tmp_path, monkeypatch):
    """A test workspace (its recipe retrains on a schedule, so the snapshot has one), and
    the environment ``make run`` would give the code location for it, with a database URL
    that carries a password."""
    settings = make_workspace(tmp_path, tiny_catalog, recipe=RECIPE)
    monkeypatch.chdir(tmp_path)
    env = {
        "MODELOPS_HOME": str(settings.home),
        "MODELOPS_RECIPES": str(settings.recipes_dir),
        "MODELOPS_CATALOG": str(settings.catalog_path),
        "MODELOPS_ARTIFACTS": settings.artifacts_uri,
        "MODELOPS_DATABASE_URL": DATABASE_URL,
        "MODELOPS_S3_ENDPOINT_URL": S3_ENDPOINT,
        "DAGSTER_HOME": str(tmp_path / "dagster"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return settings


def load_defs() -> dg.Definitions:
    from modelops.definitions import defs

    return defs()


def _keys(keys) -> list[str]:
    return sorted(k.to_user_string() for k in keys)


def _partitions(partitions_def) -> str | None:
    if partitions_def is None:
        return None
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        dims = ", ".join(
            f"{d.name}={_partitions(d.partitions_def)}" for d in partitions_def.partitions_defs
        )
        return f"MultiPartitionsDefinition:[{dims}]"
    name = getattr(partitions_def, "name", None)
    return f"{type(partitions_def).__name__}:{name}"


def describe(defs: dg.Definitions) -> dict:
    """A normalized, sorted, JSON-able description of the code location's graph."""
    repo = defs.get_repository_def()
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        policy = node.backfill_policy
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "partitions": _partitions(node.partitions_def),
            "backfill_policy": policy and [policy.policy_type.value, policy.max_partitions_per_run],
            "deps": _keys(node.parent_keys),
            "kinds": sorted(node.kinds),
            "tags": dict(sorted(node.tags.items())),
            "resources": sorted(node.assets_def.required_resource_keys),
        }
    checks = sorted(
        (
            {
                "asset": spec.asset_key.to_user_string(),
                "name": spec.name,
                "blocking": spec.blocking,
            }
            for spec in (graph.get_check_spec(key) for key in graph.asset_check_keys)
        ),
        key=lambda c: (c["asset"], c["name"]),
    )
    sensors = {}
    for sensor in repo.sensor_defs:
        selection = sensor.asset_selection
        sensors[sensor.name] = {
            "job": sensor.job_name if sensor.has_jobs else None,
            "assets": _keys(selection.resolve(graph)) if selection is not None else None,
            "default_status": sensor.default_status.value,
            "minimum_interval_seconds": sensor.minimum_interval_seconds,
            "resources": sorted(sensor.required_resource_keys),
        }
    jobs = {}
    for job in repo.get_all_jobs():
        if job.name.startswith("__"):  # Dagster's implicit asset job
            continue
        jobs[job.name] = {
            "assets": _keys(job.asset_layer.executable_asset_keys),
            "partitions": _partitions(job.partitions_def),
            "tags": dict(sorted(job.tags.items())),
        }
    schedules = {
        schedule.name: {
            "cron": schedule.cron_schedule,
            "job": schedule.job_name,
            "default_status": schedule.default_status.value,
            "resources": sorted(schedule.required_resource_keys),
        }
        for schedule in repo.schedule_defs
    }
    resources = {key: type(value).__name__ for key, value in (defs.resources or {}).items()}
    return {
        "assets": dict(sorted(assets.items())),
        "asset_checks": checks,
        "sensors": dict(sorted(sensors.items())),
        "jobs": dict(sorted(jobs.items())),
        "schedules": dict(sorted(schedules.items())),
        "resources": dict(sorted(resources.items())),
    }


def _text(description: dict) -> str:
    return json.dumps(description, indent=2, sort_keys=True) + "\n"


def test_loaded_definitions_match_the_snapshot(workspace_env):
    actual = _text(describe(load_defs()))
    if os.environ.get(UPDATE):
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(actual, encoding="utf-8")
    expected = SNAPSHOT.read_text(encoding="utf-8") if SNAPSHOT.exists() else ""
    diff = "".join(
        difflib.unified_diff(
            expected.splitlines(keepends=True),
            actual.splitlines(keepends=True),
            fromfile=str(SNAPSHOT.relative_to(REPO)),
            tofile="loaded modelops.definitions.defs",
        )
    )
    assert not diff, (
        "The code location changed. If that is intended, regenerate the snapshot with\n"
        f"  {UPDATE}=1 .venv/bin/python -m pytest {Path(__file__).relative_to(REPO)}\n"
        "and review its diff:\n" + diff
    )


def test_built_and_loaded_definitions_are_the_same_graph(workspace_env, tmp_path):
    from modelops.definitions import load

    loaded = describe(load_defs())
    # Installed without its checkout (no pyproject.toml above the package): same graph.
    assert describe(load(tmp_path / "site-packages")) == loaded
    assert describe(build_definitions(Settings.from_env())) == loaded
    assert describe(build_definitions(workspace_env)) == loaded  # explicit settings


def test_no_resource_shows_the_database_url_or_s3_endpoint(workspace_env):
    from dagster._core.remote_representation.external_data import RepositorySnap
    from dagster_shared.serdes import serialize_value

    # The code location, and the same definitions built from the environment's settings
    # (the headless demo builds them this way).
    for defs in (load_defs(), build_definitions(Settings.from_env())):
        snapshot = serialize_value(RepositorySnap.from_def(defs.get_repository_def()))
        assert PASSWORD not in snapshot and DATABASE_URL not in snapshot
        assert S3_ENDPOINT not in snapshot
        shown = {
            r.name: r.configured_values
            for r in RepositorySnap.from_def(defs.get_repository_def()).resources
        }
        # What the UI shows instead: the variables' names.
        assert shown["registry"]["database_url"].name == "MODELOPS_DATABASE_URL"
        assert shown["artifact_store"]["s3_endpoint_url"].name == "MODELOPS_S3_ENDPOINT_URL"


def test_resources_resolve_the_environment_in_the_run(workspace_env, monkeypatch):
    """EnvVar fields resolve to the value inside a run; with the variable unset the
    embedded default is configured as it is (a local SQLite path holds no secret). The
    production log always uses the registry's database."""
    seen = {}

    @dg.asset
    def probe(registry: RegistryResource, production_log: ProductionLogResource):
        seen["url"] = registry.database_url
        seen["log_url"] = production_log.registry.database_url

    def run(defs) -> None:
        keys = ("registry", "production_log")
        resources = {key: defs.resources[key] for key in keys}
        assert dg.materialize([probe], resources=resources, instance=instance).success

    with dg.instance_for_test() as instance:
        run(load_defs())
        assert seen == {"url": DATABASE_URL, "log_url": DATABASE_URL}
        monkeypatch.delenv("MODELOPS_DATABASE_URL")
        unset = load_defs()
        default = f"sqlite:///{workspace_env.home / 'modelops.db'}"
        assert unset.resources["registry"].database_url == default
        run(unset)
    assert seen == {"url": default, "log_url": default}


def test_explicit_settings_are_not_replaced_by_the_environment(workspace_env, tmp_path):
    """Definitions built from explicit settings use those values, whatever the
    environment says (tests and benchmarks point at their own stores)."""
    explicit = dataclasses.replace(
        workspace_env, database_url=f"sqlite:///{tmp_path / 'other.db'}", s3_endpoint_url=None
    )
    resources = build_definitions(explicit).resources
    assert resources["registry"].database_url == explicit.database_url
    assert resources["production_log"].registry.database_url == explicit.database_url
    assert resources["artifact_store"].s3_endpoint_url is None
