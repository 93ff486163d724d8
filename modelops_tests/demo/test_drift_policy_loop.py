"""Movement alone warns without launching a run, and the drift report's link answers: the
retraining policy through Dagster in process, with the tiny model."""

from __future__ import annotations

import json
from dataclasses import replace

import dagster as dg
import httpx
import pytest

from modelops.defs.keys import DRIFT_SENSOR, LANDING_SENSOR, WINDOW_SENSOR
from modelops.demo.scenario import Loop, ScenarioKnobs, drop_batch
from modelops.serving.reports import reports_app
from modelops.stores.artifacts.open_store import open_store
from modelops_tests.fixtures.http_server import ServerThread
from modelops_tests.fixtures.network import free_port
from modelops_tests.fixtures.workspace import make_workspace

RECIPE = {
    "monitoring": {"window_size": 60, "n_bootstrap": 30, "false_alarm_rate": 0.01},
    # Only an impossible estimated drop would retrain: drift can at most warn.
    "retraining": {"min_estimated_drop": 1.0, "min_measured_drop": None, "on_new_labels": False},
    "gates": {"max_macro_f1_drop": 1.0, "max_label_f1_drop": 1.0, "beat_baseline": False},
}
KNOBS = ScenarioKnobs(
    recipe="demo",
    batch_size=60,
    clean_batches=2,
    drifted_batches=2,
    new_intent_share=0.4,
    vocabulary_shift=0.8,
    eval_rows=120,
)


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def test_drift_without_impact_warns_and_links_its_report(
    tiny_catalog, tmp_path, instance, monkeypatch
):
    port = free_port()
    # Assets read the serve URL from the environment, as the code location does.
    monkeypatch.setenv("MODELOPS_SERVE_URL", f"http://127.0.0.1:{port}")
    settings = make_workspace(tmp_path, tiny_catalog, rows=900, recipe=RECIPE)
    settings = replace(settings, serve_url=f"http://127.0.0.1:{port}")
    loop = Loop(settings, instance, "demo", emit=lambda _m: None)
    assert loop.train("v1").success
    adapter = instance.get_latest_materialization_event(
        dg.AssetKey(["demo", "adapter"])
    ).asset_materialization.metadata
    assert adapter["drift_rate_reachable"].value is False  # 30 windows cannot show 1%
    assert "NOT reachable" in adapter["drift_calibration"].value
    landing = loop.loaded.landing_root(settings.home)
    assert loop.tick(DRIFT_SENSOR) == []  # its first tick: no report yet
    drop_batch(landing, "demo", KNOBS.batch(2), "drifted.csv", 0.5, 1)
    loop.tick(LANDING_SENSOR)
    ((_request, result),) = loop.tick(WINDOW_SENSOR)
    assert result.success
    md = instance.get_latest_materialization_event(
        dg.AssetKey(["demo", "drift_report"])
    ).asset_materialization.metadata
    assert md["drifted"].value is True and md["retrain"].value is False
    assert md["action"].value == "warn" and md["policy"].value.startswith("Warn")
    low, high = md["estimated_accuracy_low"].value, md["estimated_accuracy_high"].value
    assert low <= md["estimated_accuracy"].value <= high
    assert md["measured_accuracy"].value is not None and md["new_labels"].value
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert loop.tick(DRIFT_SENSOR) == []  # movement alone launches nothing
    report = instance.fetch_materializations(dg.AssetKey(["demo", "drift_report"]), limit=1)
    seen = json.loads(loop.cursors[DRIFT_SENSOR])["recipes"]["demo"]
    assert seen == {"storage_id": report.records[0].storage_id}  # read, nothing launched
    assert instance.get_runs(filters=dg.RunsFilter(job_name="demo__retrain")) == []
    # The report's link answers in a browser's stead.
    url = md["report_url"].value
    assert url.startswith(settings.serve_url + "/reports/demo/adapter-")
    store = open_store(settings.artifacts_uri)
    with ServerThread(reports_app(store), port=port):
        response = httpx.get(url)
    assert response.status_code == 200 and "<html" in response.text[:2000].lower()
