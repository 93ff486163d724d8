"""The Dagster instance of docker/dagster.yaml on PostgreSQL (a fresh database, dropped
after): a sensor tick, a materialization, and a partition backfill queued by the
backfill daemon's own iteration through the queued run coordinator."""

from __future__ import annotations

import logging
import time
import uuid

import boto3
import dagster as dg
import pytest
from dagster._core.execution.backfill import PartitionBackfill
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import ModuleTarget
from dagster._daemon.backfill import execute_backfill_iteration
from dagster._daemon.controller import create_daemon_grpc_server_registry
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from modelops.config.recipe import load_recipes
from modelops.defs.build import build_definitions
from modelops.defs.keys import RecipeKeys
from modelops.defs.recipe.training_assets import build_training_assets
from modelops.defs.resources import build_resources
from modelops.defs.taxonomy import build_taxonomy_sensor
from modelops_tests.fixtures.production_instance import instance_env, write_dagster_home
from modelops_tests.fixtures.workspace import LENIENT, make_workspace

pytestmark = pytest.mark.postgres


def test_production_instance_on_postgres(tiny_catalog, tmp_path, pg_url, s3_bucket, monkeypatch):
    endpoint, bucket = s3_bucket
    settings = make_workspace(tmp_path, tiny_catalog, recipe=LENIENT)
    home = tmp_path / "dagster_home"
    config = write_dagster_home(home)
    env = {
        **instance_env(pg_url, endpoint, bucket),
        "DAGSTER_HOME": str(home),
        "MODELOPS_HOME": str(settings.home),
        "MODELOPS_DATABASE_URL": settings.database_url,
        "MODELOPS_ARTIFACTS": settings.artifacts_uri,
        "MODELOPS_RECIPES": str(settings.recipes_dir),
        "MODELOPS_CATALOG": str(settings.catalog_path),
        "MODELOPS_TORCH_THREADS": "1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    limits = config["run_coordinator"]["config"]["tag_concurrency_limits"]

    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        coordinator = instance.run_coordinator
        assert type(coordinator).__name__ == "QueuedRunCoordinator"
        queue = coordinator.get_run_queue_config()
        assert (
            queue.max_concurrent_runs == config["run_coordinator"]["config"]["max_concurrent_runs"]
        )
        assert [(c["key"], c["limit"]) for c in queue.tag_concurrency_limits] == [
            (c["key"], c["limit"]) for c in limits
        ]

        # A sensor tick: the taxonomy sensor finds v1 and the partition lands in PostgreSQL.
        tick = build_taxonomy_sensor(settings)(dg.build_sensor_context(instance=instance))
        for request in tick.dynamic_partitions_requests:
            instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
        assert instance.get_dynamic_partitions("taxonomy_demo") == ["v1"]
        instance.add_dynamic_partitions("base_models", ["tiny@r1"])  # the base sensor's
        key = "tiny@r1|v1"

        # A materialization of the v1 partition, its events in PostgreSQL.
        keys = RecipeKeys.of("demo")
        defs = build_definitions(settings)
        result = dg.materialize(
            build_training_assets(load_recipes(settings.recipes_dir)[0]),
            resources=build_resources(settings),
            instance=instance,
            partition_key=key,
        )
        assert result.success
        event = instance.get_latest_materialization_event(keys.champion)
        assert event is not None and event.run_id == result.run_id
        assert instance.get_run_by_id(result.run_id).status == dg.DagsterRunStatus.SUCCESS

        # A partition backfill of the training assets: the backfill daemon's iteration
        # submits its run through the queued run coordinator, into PostgreSQL.
        backfill_id = f"bf{uuid.uuid4().hex[:6]}"
        instance.add_backfill(
            PartitionBackfill.from_asset_partitions(
                backfill_id=backfill_id,
                asset_graph=defs.resolve_asset_graph(),
                partition_names=[key],
                asset_selection=list(keys.training),
                backfill_timestamp=time.time(),
                tags={"modelops/training": "backfill"},
                dynamic_partitions_store=instance,
                all_partitions=False,
                title=None,
                description=None,
                run_config=None,
            )
        )
        target = ModuleTarget("modelops.definitions", None, str(tmp_path), "modelops.definitions")
        with (
            create_daemon_grpc_server_registry(instance) as registry,
            WorkspaceProcessContext(instance, target, grpc_server_registry=registry) as context,
        ):
            for error in execute_backfill_iteration(context, logging.getLogger("backfill")):
                assert error is None, error
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        assert len(runs) == 1
        (run,) = runs
        assert run.status == dg.DagsterRunStatus.QUEUED
        partition = run.tags.get("dagster/partition") or run.tags.get(
            "dagster/asset_partition_range_start"
        )
        assert partition == key, run.tags
        assert run.tags["modelops/training"] == "backfill"
        assert set(run.asset_selection) == set(keys.training)

    # The run's step logs went to S3 (S3ComputeLogManager of the same file).
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    logged = s3.list_objects_v2(Bucket=bucket, Prefix="dagster-compute-logs/")
    assert logged.get("KeyCount", 0) > 0
