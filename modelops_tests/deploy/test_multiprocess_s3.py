"""The training assets with Dagster's multiprocess executor: every step in its own
process with its own empty local disk, S3 artifacts (moto) and a PostgreSQL registry.
Nothing crosses steps through a local file: a step that needed one would fail."""

from __future__ import annotations

import json

import boto3
import dagster as dg
import pytest

from modelops.config.recipe import load_recipes
from modelops.defs.partitions import partition_key, recipe_partitions, sync_partitions
from modelops.ml.catalog import Catalog
from modelops.stores.db.engine import migrate
from modelops.stores.registry import Registry
from modelops_tests.fixtures.isolated_steps import HOMES_VAR, isolated_training_job
from modelops_tests.fixtures.workspace import LENIENT, make_workspace


@pytest.mark.postgres
def test_each_step_in_its_own_process_and_disk(
    tiny_catalog, tmp_path, s3_bucket, pg_url, monkeypatch
):
    endpoint, bucket = s3_bucket
    settings = make_workspace(tmp_path, tiny_catalog, recipe=LENIENT)
    migrate(pg_url)  # the steps' processes open it: modelops init first
    homes = tmp_path / "homes"
    homes.mkdir()
    for name, value in {
        HOMES_VAR: str(homes),
        "MODELOPS_DATABASE_URL": pg_url,
        "MODELOPS_ARTIFACTS": f"s3://{bucket}/prod",
        "MODELOPS_S3_ENDPOINT_URL": endpoint,
        "MODELOPS_RECIPES": str(settings.recipes_dir),
        "MODELOPS_CATALOG": str(settings.catalog_path),
        "MODELOPS_TORCH_THREADS": "1",
    }.items():
        monkeypatch.setenv(name, value)

    with dg.instance_for_test() as instance:
        sync_partitions(
            instance, load_recipes(settings.recipes_dir), Catalog.load(settings.catalog_path)
        )
        result = dg.execute_job(
            dg.reconstructable(isolated_training_job),
            instance=instance,
            tags=recipe_partitions(
                load_recipes(settings.recipes_dir)[0]
            ).get_tags_for_partition_key(partition_key("v1", "tiny@r1")),
        )
        assert result.success
        steps = {
            e.step_key
            for e in result.all_events
            if e.event_type == dg.DagsterEventType.STEP_SUCCESS
        }
        assert steps == {
            "demo__training_dataset",
            "demo__mapped_candidate",
            "demo__adapter",
            "demo__evaluation",
            "demo__champion",
        }

    # The orchestrating process and each of the five step processes had a home of its own.
    assert len({p.name.split("-")[0] for p in homes.iterdir()}) >= 6

    # What crossed the steps is in the bucket, as JSON.
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    values = {k for k in keys if k.startswith("prod/step-values/")}
    assert values == {
        "prod/step-values/demo/training_dataset/tiny@r1/v1.json",
        "prod/step-values/demo/mapped_candidate/tiny@r1/v1.json",
        "prod/step-values/demo/adapter/tiny@r1/v1.json",
        "prod/step-values/demo/evaluation/tiny@r1/v1.json",
    }
    body = s3.get_object(Bucket=bucket, Key="prod/step-values/demo/evaluation/tiny@r1/v1.json")
    verdict = json.loads(body["Body"].read())

    with Registry(pg_url) as registry:
        champion = registry.alias("demo", "champion")
        assert champion is not None and champion.id == verdict["adapter_id"]
        assert champion.artifact_uri.startswith(f"s3://{bucket}/prod/adapters/demo/")
        assert champion.artifact_uri.removeprefix(f"s3://{bucket}/") + "/MANIFEST.json" in keys
