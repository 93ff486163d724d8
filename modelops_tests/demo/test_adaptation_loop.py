"""The continuous-adaptation loop end to end with the tiny model, through Dagster in
process: sensors tick, a drift report fires, retraining runs once per drift event."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from modelops.defs.keys import DRIFT_SENSOR, LANDING_SENSOR, WINDOW_SENSOR
from modelops.demo.scenario import Loop, ScenarioKnobs, drop_batch, run_scenario
from modelops.lifecycle.platform import Platform
from modelops_tests.fixtures.workspace import make_workspace

RECIPE = {
    "monitoring": {"window_size": 60, "n_bootstrap": 30, "false_alarm_rate": 0.01},
    "retraining": {"mode": "incremental", "replay_fraction": 0.5, "cooldown_minutes": 60},
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


def test_scenario_flags_drift_and_retrains_incrementally(tiny_catalog, tmp_path, instance):
    # 1,800 rows: the two-request messages of the demo generator vary more per 60-row
    # window; with 900 reference rows a clean window tripped the embedding signal.
    settings = make_workspace(tmp_path, tiny_catalog, rows=1800, recipe=RECIPE)
    summary = run_scenario(settings, KNOBS, emit=lambda _m: None, instance=instance)
    json.dumps(summary)  # the CLI prints it as JSON
    kinds = [b["kind"] for b in summary["batches"]]
    assert kinds == ["clean", "clean", "drifted", "drifted"]
    assert all(b["drifted"] is not None for b in summary["batches"])
    assert summary["false_alarms"] == 0
    assert summary["first_drift_batch"] == 2 and summary["detection_delay_batches"] == 0
    # One drift event -> one retraining run; the cooldown holds back the second.
    (run,) = summary["retraining_runs"]
    assert run["batch"] == 2 and run["success"] and run["mode"] == "incremental"
    assert run["run_key"].startswith("demo-drift-") and run["reason"].startswith("drift: ")
    platform = Platform.from_settings(settings)
    newest = platform.registry.get(run["newest_adapter"])
    assert newest.lineage["mode"] == "incremental"
    assert newest.lineage["warm_start"]["adapter_id"] == summary["initial_champion"]["adapter_id"]
    assert (
        newest.metrics["train_rows"]
        < platform.registry.get(summary["initial_champion"]["adapter_id"]).metrics["train_rows"]
        + 200
    )
    assert summary["new_champion"]["changed"] is True
    assert summary["new_champion"]["adapter_id"] == newest.id
    # Labelled feedback from the drifted batches joined the retraining data.
    ds = [
        e
        for e in instance.get_latest_materialization_event(
            dg.AssetKey(["demo", "training_dataset"])
        ).asset_materialization.metadata.items()
    ]
    assert dict(ds)["feedback_rows"].value > 0
    # Production was logged; the incremental adapter reproduces from its lineage.
    assert platform.production_log.count_since("demo", 0) == 4 * 60
    from modelops.lifecycle.reproduce import reproduce

    assert reproduce(platform, newest.id, emit=lambda _m: None)["identical"] is True


def test_sensor_run_keys_cursor_and_cooldown(tiny_catalog, tmp_path, instance):
    settings = make_workspace(tmp_path, tiny_catalog, rows=900, recipe=RECIPE)
    loop = Loop(settings, instance, "demo", emit=lambda _m: None)
    assert loop.train("v1").success
    landing = loop.loaded.landing_root(settings.home)
    assert loop.tick(LANDING_SENSOR) == []  # nothing waiting
    drop_batch(landing, "demo", KNOBS.batch(2).head(30), "a.csv", 0.5, 1)
    ((request, result),) = loop.tick(LANDING_SENSOR)
    assert result.success and request.run_key.startswith("demo-landing-")
    assert loop.tick(WINDOW_SENSOR) == []  # 30 of 60 rows
    assert loop.tick(DRIFT_SENSOR) == []  # no report yet
    drop_batch(landing, "demo", KNOBS.batch(3).head(30), "b.csv", 0.5, 2)
    loop.tick(LANDING_SENSOR)
    ((request, result),) = loop.tick(WINDOW_SENSOR)
    assert request.run_key == "demo-window-60"
    assert json.loads(loop.cursors[WINDOW_SENSOR]) == {"demo": 60}
    assert result.success
    drift_cursor = loop.cursors.get(DRIFT_SENSOR)
    ((request, result),) = loop.tick(DRIFT_SENSOR)  # new intents + shifted vocabulary
    assert request.partition_key == "tiny@r1|v1" and request.tags["modelops/mode"] == "incremental"
    assert request.run_key.startswith("demo-drift-") and result.success
    assert loop.tick(DRIFT_SENSOR) == []  # the same report never launches twice
    # Replaying the tick from the old cursor asks for the same run key: Dagster's
    # run-key dedupe keeps it to one run.
    loop.cursors[DRIFT_SENSOR] = drift_cursor
    assert loop.tick(DRIFT_SENSOR) == []
    drop_batch(landing, "demo", KNOBS.batch(4), "c.csv", 0.5, 3)
    loop.tick(LANDING_SENSOR)
    loop.tick(WINDOW_SENSOR)
    assert loop.tick(DRIFT_SENSOR) == []  # drifted again, but in the 60-minute cooldown
    state = json.loads(loop.cursors[DRIFT_SENSOR])["recipes"]["demo"]
    assert state["launched_at"] > 0 and state["storage_id"] > 0
