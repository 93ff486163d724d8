"""Two ticks of the drift sensor racing on the same drift report ask for the same run key,
so Dagster launches one retraining run; a later tick does not fire again. A second recipe,
whose report did not drift, launches nothing."""

from __future__ import annotations

import threading

import dagster as dg

from modelops.config.recipe import load_recipes
from modelops.defs.build import build_definitions
from modelops.defs.keys import DRIFT_SENSOR, RecipeKeys
from modelops.defs.partitions import sync_partitions
from modelops.defs.resources import build_resources
from modelops.lifecycle.platform import Platform
from modelops.ml.catalog import Catalog
from modelops_tests.fixtures.registry_rows import adapter_fields
from modelops_tests.fixtures.workspace import make_workspace, write_recipe


def test_two_drift_ticks_on_one_report_request_one_run(tiny_catalog, tmp_path):
    settings = make_workspace(tmp_path, tiny_catalog)
    write_recipe(tmp_path, {"name": "other"})
    platform = Platform.from_settings(settings)
    for recipe in ("demo", "other"):
        serving = platform.registry.register(**adapter_fields(recipe=recipe))
        platform.registry.promote(serving.id, who="tester", why="test", evidence={}, force=True)
    platform.registry.close()
    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def(DRIFT_SENSOR)
    resources = build_resources(settings)
    with dg.instance_for_test() as instance:
        sync_partitions(
            instance, load_recipes(settings.recipes_dir), Catalog.load(settings.catalog_path)
        )
        barrier, ticks = threading.Barrier(2), []

        def tick(cursor=None):
            with (
                dg.build_sensor_context(
                    instance=instance, cursor=cursor, resources=resources, definitions=defs
                ) as context,
                dg.partition_loading_context(dynamic_partitions_store=instance),
            ):
                return sensor.evaluate_tick(context)

        start = tick().cursor  # the first tick: where the event log ends
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key=RecipeKeys.of("other").drift_report,
                metadata={"drifted": False, "fired": "", "report": "o.html"},
            )
        )
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key=RecipeKeys.of("demo").drift_report,
                metadata={"drifted": True, "fired": "prediction_drift", "report": "r.html"},
            )
        )

        def racing():
            barrier.wait()
            ticks.append(tick(start))

        threads = [threading.Thread(target=racing) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        requests = [r for data in ticks for r in data.run_requests or []]
        assert len(requests) == 2
        (key,) = {r.run_key for r in requests}  # one key: Dagster launches one run for it
        storage_id = (
            instance.fetch_materializations(RecipeKeys.of("demo").drift_report, limit=1)
            .records[0]
            .storage_id
        )
        assert key == f"demo-drift-{storage_id}"
        assert {r.partition_key for r in requests} == {"tiny@r1|v1"}  # the champion's
        assert {r.job_name for r in requests} == {"demo__retrain"}
        later = tick(ticks[0].cursor)
        assert not later.run_requests
        assert "no new drift report" in str(later.skip_message)
