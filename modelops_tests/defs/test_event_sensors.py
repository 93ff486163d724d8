"""The sensors over every recipe (``defs/sensors/``), with several recipes: one recipe's
event launches only that recipe's run, each recipe keeps its own cursor entry and its own
cooldown, and a run key launched before (by the per-recipe sensors these replaced) is not
launched again. No training: champions are placeholder registry rows, drift reports are
runless materializations, production rows are logged directly."""

from __future__ import annotations

import json
import os

import dagster as dg
import pytest

from modelops.config.recipe import load_recipes
from modelops.defs.build import build_definitions
from modelops.defs.keys import (
    DRIFT_SENSOR,
    LANDING_SENSOR,
    TAG_DRIFT_EVENT,
    TAG_LANDING,
    TAG_MODE,
    TAG_REASON,
    WINDOW_SENSOR,
    RecipeKeys,
)
from modelops.defs.partitions import sync_partitions
from modelops.defs.resources import build_resources
from modelops.lifecycle.platform import Platform
from modelops.stores.landing import INCOMING
from modelops.stores.production_log import PredictionRecord
from modelops_tests.fixtures.registry_rows import adapter_fields
from modelops_tests.fixtures.workspace import make_workspace, write_recipe

# Three recipes, each its own window size; demo retrains in full mode; beta is paused.
RECIPES = {
    "alpha": {"monitoring": {"window_size": 25}, "retraining": {"cooldown_minutes": 60}},
    "beta": {"monitoring": {"window_size": 30}, "retraining": {"on_drift": False}},
}
DEMO = {"monitoring": {"window_size": 20}, "retraining": {"mode": "full", "cooldown_minutes": 60}}


class Sensors:
    """The definitions of a three-recipe workspace, its sensors ticked in this process
    with their cursors kept, as the daemon would."""

    def __init__(self, settings, instance):
        self.settings, self.instance = settings, instance
        self.defs = build_definitions(settings)
        self.resources = build_resources(settings)
        self.platform = Platform.from_settings(settings)
        self.cursors: dict[str, str | None] = {}
        sync_partitions(instance, load_recipes(settings.recipes_dir), self.platform.catalog)

    def tick(self, name: str, cursor: str | None = None, keep: bool = True):
        sensor = self.defs.resolve_sensor_def(name)
        with (
            dg.build_sensor_context(
                instance=self.instance,
                cursor=cursor if cursor is not None else self.cursors.get(name),
                resources=self.resources,
                definitions=self.defs,
            ) as context,
            dg.partition_loading_context(dynamic_partitions_store=self.instance),
        ):
            data = sensor.evaluate_tick(context)
        if keep:
            self.cursors[name] = data.cursor
        return data

    def state(self, name: str) -> dict:
        return json.loads(self.cursors[name])

    def serve(self, recipe: str):
        registry = self.platform.registry
        adapter = registry.register(**adapter_fields(recipe=recipe))
        registry.promote(adapter.id, who="tester", why="test", evidence={}, force=True)

    def report(self, recipe: str, drifted: bool = True, retrain: bool | None = None) -> int:
        """A drift report of ``recipe``; its storage id."""
        metadata = {"drifted": drifted, "fired": "embedding", "report": f"{recipe}.html"}
        if retrain is not None:
            metadata["retrain"] = retrain
        key = RecipeKeys.of(recipe).drift_report
        self.instance.report_runless_asset_event(dg.AssetMaterialization(key, metadata=metadata))
        return self.instance.fetch_materializations(key, limit=1).records[0].storage_id

    def log_rows(self, recipe: str, n: int) -> list[int]:
        records = [
            PredictionRecord.for_text(
                f"{recipe} text {i}",
                recipe=recipe,
                taxonomy_version="v1",
                adapter_id=1,
                predicted_label="card_lost",
                confidence=0.5,
                top_k=[{"label": "card_lost", "p": 0.5}],
                source="api",
            )
            for i in range(n)
        ]
        return self.platform.production_log.log_predictions(records)


@pytest.fixture
def sensors(tiny_catalog, tmp_path):
    settings = make_workspace(tmp_path, tiny_catalog, recipe=DEMO)
    for name, overrides in RECIPES.items():
        write_recipe(tmp_path, {"name": name, **overrides})
    with dg.instance_for_test() as instance:
        yield Sensors(settings, instance)


def requests_of(data) -> dict[str, dg.RunRequest]:
    """The tick's run requests by recipe (the first part of their asset keys or job)."""
    out = {}
    for request in data.run_requests or []:
        recipe = (
            request.asset_selection[0].path[0]
            if request.asset_selection
            else request.job_name.removesuffix("__retrain")
        )
        assert recipe not in out, "two runs for one recipe in one tick"
        out[recipe] = request
    return out


def test_one_sensor_per_kind_of_event_over_every_recipe(sensors):
    names = sorted(s.name for s in sensors.defs.sensors)
    assert names == sorted(
        [LANDING_SENSOR, WINDOW_SENSOR, DRIFT_SENSOR, "base_models", "taxonomy_versions"]
    )
    drift = sensors.defs.resolve_sensor_def(DRIFT_SENSOR)
    assert sorted(j.name for j in drift.jobs) == [
        "alpha__retrain",
        "beta__retrain",
        "demo__retrain",
    ]
    window = sensors.defs.resolve_sensor_def(WINDOW_SENSOR)
    assert window.asset_selection.resolve(sensors.defs.resolve_asset_graph()) == {
        RecipeKeys.of(r).drift_report for r in ("alpha", "beta", "demo")
    }


def test_drift_launches_only_that_recipes_retraining_once_with_its_own_cooldown(sensors):
    for recipe in ("alpha", "beta", "demo"):
        sensors.serve(recipe)
    first = sensors.tick(DRIFT_SENSOR)  # where the event log ends
    assert not first.run_requests and "no new drift report" in str(first.skip_message)

    alpha = sensors.report("alpha")
    sensors.report("demo", drifted=False)
    (request,) = requests_of(sensors.tick(DRIFT_SENSOR)).values()
    assert request.job_name == "alpha__retrain"
    assert request.run_key == f"alpha-drift-{alpha}"
    assert request.partition_key == "tiny@r1|v1"  # the champion's version on its base
    assert request.tags[TAG_DRIFT_EVENT] == str(alpha)
    assert request.tags[TAG_MODE] == "incremental" and request.tags[TAG_REASON].startswith("drift")
    state = sensors.state(DRIFT_SENSOR)["recipes"]
    assert state["alpha"]["storage_id"] == alpha and state["alpha"]["launched_at"] > 0
    assert "launched_at" not in state["demo"]  # its report did not drift

    again = sensors.tick(DRIFT_SENSOR)  # the same report never launches twice
    assert not again.run_requests and "no new drift report" in str(again.skip_message)

    # alpha drifts again (in its 60-minute cooldown), demo drifts, beta is paused
    sensors.report("alpha")
    demo = sensors.report("demo")
    sensors.report("beta")
    data = sensors.tick(DRIFT_SENSOR)
    (request,) = requests_of(data).values()
    assert request.job_name == "demo__retrain" and request.run_key == f"demo-drift-{demo}"
    assert request.tags[TAG_MODE] == "full"
    state = sensors.state(DRIFT_SENSOR)["recipes"]
    assert state["alpha"]["launched_at"] < state["demo"]["launched_at"]

    # a policy that only warns, for each recipe, launches nothing
    sensors.report("demo", retrain=False)
    quiet = sensors.tick(DRIFT_SENSOR)
    assert not quiet.run_requests and "warning only" in str(quiet.skip_message)


def test_paused_recipe_and_cooldown_reasons_are_said(sensors):
    sensors.serve("alpha")
    sensors.serve("beta")
    sensors.tick(DRIFT_SENSOR)
    sensors.report("beta")
    paused = sensors.tick(DRIFT_SENSOR)
    assert not paused.run_requests
    assert "beta: drift reports launch no retraining (retraining.on_drift: false)" in str(
        paused.skip_message
    )
    sensors.report("alpha")
    assert requests_of(sensors.tick(DRIFT_SENSOR)).keys() == {"alpha"}
    sensors.report("alpha")
    cooling = sensors.tick(DRIFT_SENSOR)
    assert not cooling.run_requests and "alpha: drift, but in cooldown" in str(cooling.skip_message)


def test_a_new_cursor_starts_at_the_end_and_does_not_relaunch(sensors):
    """A first tick (after the upgrade from per-recipe sensors, or a cursor reset) starts
    at the end of the event log: the reports before it launch nothing. A report whose
    retraining already ran (its run key) is not launched again, and the cooldown counts
    from the last run a drift report launched, as the runs say."""
    sensors.serve("alpha")
    sensors.serve("demo")
    sensors.report("alpha")
    first = sensors.tick(DRIFT_SENSOR)
    assert not first.run_requests and sensors.state(DRIFT_SENSOR)["recipes"] == {}
    alpha = sensors.report("alpha")
    # launched by the old alpha__drift sensor (Dagster dedupes run keys per sensor name)
    sensors.instance.add_run(
        dg.DagsterRun(job_name="x", tags={"dagster/run_key": f"alpha-drift-{alpha}"})
    )
    demo = sensors.report("demo")
    data = sensors.tick(DRIFT_SENSOR)
    assert requests_of(data).keys() == {"demo"}
    mine = sensors.state(DRIFT_SENSOR)["recipes"]["alpha"]
    assert mine == {"storage_id": alpha, "launched_at": 0}  # seen, not launched again
    # the cursor is lost; a run that demo's report launched was created just now
    sensors.instance.add_run(
        dg.DagsterRun(job_name="demo__retrain", tags={TAG_DRIFT_EVENT: str(demo)})
    )
    start = sensors.tick(DRIFT_SENSOR, cursor="", keep=False).cursor
    sensors.report("demo")
    lost = sensors.tick(DRIFT_SENSOR, cursor=start, keep=False)
    assert not lost.run_requests and "demo: drift, but in cooldown" in str(lost.skip_message)


def test_windows_are_counted_per_recipe(sensors):
    assert sensors.tick(WINDOW_SENSOR).run_requests == []
    alpha = sensors.log_rows("alpha", 26)  # window 25: full
    sensors.log_rows("beta", 12)  # window 30: not yet
    (request,) = requests_of(sensors.tick(WINDOW_SENSOR)).values()
    assert request.asset_selection == [RecipeKeys.of("alpha").drift_report]
    assert request.run_key == f"alpha-window-{alpha[-1]}"
    assert sensors.state(WINDOW_SENSOR) == {"alpha": alpha[-1]}
    sensors.log_rows("alpha", 2)
    beta = sensors.log_rows("beta", 18)  # 30 since its start
    data = sensors.tick(WINDOW_SENSOR)
    assert requests_of(data).keys() == {"beta"}
    assert requests_of(data)["beta"].run_key == f"beta-window-{beta[-1]}"
    assert sensors.state(WINDOW_SENSOR) == {"alpha": alpha[-1], "beta": beta[-1]}
    waiting = sensors.tick(WINDOW_SENSOR)
    assert not waiting.run_requests and "alpha: 2/25 new rows" in str(waiting.skip_message)
    # a window whose report was requested before (the old sensor's run key) is skipped,
    # and the cursor still moves past it
    demo = sensors.log_rows("demo", 20)
    sensors.instance.add_run(
        dg.DagsterRun(job_name="x", tags={"dagster/run_key": f"demo-window-{demo[-1]}"})
    )
    assert not sensors.tick(WINDOW_SENSOR).run_requests
    assert sensors.state(WINDOW_SENSOR)["demo"] == demo[-1]


def drop(sensors, recipe: str, name: str) -> None:
    folder = sensors.settings.home / "landing" / recipe / INCOMING
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("text\nwhere is my card\n", encoding="utf-8")


def test_landing_files_of_each_recipe_and_the_busy_check(sensors):
    assert "no files waiting" in str(sensors.tick(LANDING_SENSOR).skip_message)
    drop(sensors, "alpha", "a.csv")
    drop(sensors, "beta", "b.csv")
    drop(sensors, "demo", ".still-writing.csv")  # partial: not waiting
    data = requests_of(sensors.tick(LANDING_SENSOR))
    assert data.keys() == {"alpha", "beta"}
    alpha = data["alpha"]
    assert alpha.asset_selection == [RecipeKeys.of("alpha").batch_scoring]
    assert alpha.tags[TAG_LANDING] == "alpha" and alpha.tags[TAG_REASON] == "1 landed files"
    assert alpha.run_key.startswith("alpha-landing-")
    # alpha's scoring run is still going: only beta is asked for again
    sensors.instance.add_run(
        dg.DagsterRun(job_name="x", tags={TAG_LANDING: "alpha"}, status=dg.DagsterRunStatus.STARTED)
    )
    data = sensors.tick(LANDING_SENSOR)
    assert requests_of(data).keys() == {"beta"}


def test_one_recipes_broken_landing_folder_does_not_stop_the_others(sensors, tmp_path):
    drop(sensors, "alpha", "a.csv")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (sensors.settings.home / "landing" / "beta").mkdir(parents=True)
    os.symlink(elsewhere, sensors.settings.home / "landing" / "beta" / INCOMING)
    data = sensors.tick(LANDING_SENSOR)
    assert requests_of(data).keys() == {"alpha"}
