"""Each recipe's training in a backfill is its own run: ``modelops backfill`` over three
recipes sharing a taxonomy version makes three runs, queued under the training tag
limit and launched by the instance's run launcher (one process each); one recipe's
failure does not stop the others, and launching again resumes only that recipe.

Dagster runs here in this process, as the daemon would: GraphQL answered by Dagster's
own schema, the backfill daemon's and the queued run coordinator's iterations, runs
launched by the default run launcher into processes of a code server."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import ModuleTarget
from dagster._daemon.controller import create_daemon_grpc_server_registry

from modelops.cli import main
from modelops.defs import webserver
from modelops.defs.keys import TAG_TRAINING, RecipeKeys
from modelops_tests.fixtures.dagster_daemon import (
    answer_graphql_in_process,
    backfill_iteration,
    daemon_thread,
    queued_coordinator,
)
from modelops_tests.fixtures.processes import workspace_env
from modelops_tests.fixtures.workspace import LENIENT, make_workspace, write_recipe

REPO = Path(__file__).resolve().parents[2]
RECIPES = ["alpha", "demo", "zulu"]
URL = "http://in-process"


@contextlib.contextmanager
def in_process_dagster(monkeypatch, settings, limit: int) -> Iterator:
    """A test instance with the queued run coordinator at ``limit`` training runs, the
    code location ``modelops.definitions`` in a code server, and the webserver's GraphQL
    client answered by Dagster's schema over it."""
    for name, value in workspace_env(settings).items():
        monkeypatch.setenv(name, value)
    target = ModuleTarget("modelops.definitions", None, str(REPO), "modelops")
    with (
        dg.instance_for_test(overrides=queued_coordinator(limit)) as instance,
        create_daemon_grpc_server_registry(instance) as registry,
        WorkspaceProcessContext(instance, target, grpc_server_registry=registry) as context,
    ):
        answer_graphql_in_process(monkeypatch, context)
        yield context


def workspace(tmp_path, tiny_catalog):
    settings = make_workspace(tmp_path, tiny_catalog, rows=240, recipe=LENIENT)
    for name in RECIPES:
        if name != "demo":
            write_recipe(tmp_path, {"name": name, **LENIENT})
    return settings


def test_dagster_puts_recipes_sharing_a_key_in_one_run(tiny_catalog, tmp_path, monkeypatch):
    """Why the launcher makes a backfill per recipe: one asset backfill over the three
    recipes' training assets for one partition key becomes ONE run (Dagster groups a
    backfill's runs by partitions definition, partition keys and backfill policy)."""
    settings = workspace(tmp_path, tiny_catalog)
    with in_process_dagster(monkeypatch, settings, limit=1) as context:
        client = webserver.GraphQL(URL)
        targets = [webserver.Target(r, "demo", "v1", "tiny@r1") for r in RECIPES]
        selector = webserver._repository_selector(client, targets)
        for name, key in (("taxonomy_demo", "v1"), ("base_models", "tiny@r1")):
            client.call(webserver.ADD_PARTITION, {"selector": selector, "name": name, "key": key})
        params = {
            "partitionNames": ["tiny@r1|v1"],
            "assetSelection": [
                {"path": list(k.path)} for r in RECIPES for k in RecipeKeys.of(r).training
            ],
        }
        launched = client.call(webserver.LAUNCH, {"params": params})["launchPartitionBackfill"]
        backfill_iteration(context)
        runs = context.instance.get_runs(
            filters=dg.RunsFilter(tags={"dagster/backfill": launched["backfillId"]})
        )
    assert len(runs) == 1
    assert {key.path[0] for key in runs[0].asset_selection} == set(RECIPES)


def run_pids(instance, run_id: str) -> tuple[set[int], set[int]]:
    """The pids the run launcher reported starting for the run ("Started process for run
    (pid: N)") and the pids its steps ran in."""
    engine = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
    launched = {
        int(found.group(1))
        for r in engine.records
        if (found := re.search(r"process for run \(pid: (\d+)\)", r.event_log_entry.message))
    }
    starts = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_START)
    return launched, {r.event_log_entry.dagster_event.pid for r in starts.records}


def backfill(capsys, *options: str) -> tuple[int, dict]:
    code = main(["backfill", "--taxonomy", "demo:v1", "--url", URL, "--json", *options])
    return code, json.loads(capsys.readouterr().out)


def test_each_recipe_is_its_own_run_under_the_training_limit(
    tiny_catalog, tmp_path, monkeypatch, capsys
):
    settings = workspace(tmp_path, tiny_catalog)
    good = tmp_path / "data" / "requests.csv"
    bad = tmp_path / "data" / "zulu.csv"
    bad.write_text("text,labelz\nhello,card_lost\n", encoding="utf-8")  # no label column
    write_recipe(
        tmp_path, {"name": "zulu", **LENIENT, "data": {"sources": [{"path": "../data/zulu.csv"}]}}
    )
    with in_process_dagster(monkeypatch, settings, limit=1) as context, daemon_thread(context):
        code, report = backfill(capsys, "--wait")
        instance = context.instance
        runs = instance.get_runs()

        # One backfill and one run per recipe, each run one recipe's training assets.
        assert code == 1 and sorted(report["launched"]) == RECIPES
        assert len(runs) == 3
        by_recipe = {b["recipe"]: b for b in report["backfills"]}
        assert sorted(by_recipe) == RECIPES
        assert len({b["id"] for b in report["backfills"]}) == 3
        processes = set()
        for run in runs:
            (recipe,) = {key.path[0] for key in run.asset_selection}
            assert set(run.asset_selection) == set(RecipeKeys.of(recipe).training)
            assert run.tags[TAG_TRAINING] == recipe
            assert run.tags["dagster/backfill"] == by_recipe[recipe]["id"]
            assert [r["run_id"] for r in by_recipe[recipe]["runs"]] == [run.run_id]
            # Its own process, started by the run launcher; its steps ran in that process
            # (the location's executor: in process, no process per step).
            launched, steps = run_pids(instance, run.run_id)
            assert len(launched) == 1 and steps == launched
            processes |= launched
        assert len(processes) == 3
        # The failure of zulu's run stopped neither alpha's nor demo's.
        statuses = {r: b["runs"][0]["status"] for r, b in by_recipe.items()}
        assert statuses == {"alpha": "SUCCESS", "demo": "SUCCESS", "zulu": "FAILURE"}
        assert by_recipe["zulu"]["status"] not in webserver.SUCCEEDED
        assert all(by_recipe[r]["status"] in webserver.SUCCEEDED for r in ("alpha", "demo"))
        # Queued under the limit of one training run: the runs, each started by the run
        # launcher, never overlapped.
        records = sorted(instance.get_run_records(), key=lambda r: r.start_time)
        assert all(r.start_time and r.end_time for r in records)
        for earlier, later in zip(records, records[1:], strict=False):
            assert earlier.end_time <= later.start_time

        # Launching again, with zulu's data fixed, resumes zulu alone.
        shutil.copyfile(good, bad)
        code, again = backfill(capsys, "--wait")
        assert code == 0
        assert sorted(again["already_done"]) == ["alpha", "demo"]
        assert again["launched"] == ["zulu"]
        (rerun,) = again["backfills"][0]["runs"]
        assert rerun["status"] == "SUCCESS"
        assert len(instance.get_runs()) == 4
