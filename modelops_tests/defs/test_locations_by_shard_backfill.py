"""Code locations by shard behind one Dagster instance, as docs/deploy.md deploys them: two
code servers (``dagster api grpc``, ``MODELOPS_RECIPE_SHARD`` 0/2 and 1/2) in one
workspace. Each location holds its shard's recipes and no other; ``modelops backfill``
over all of them launches one run per recipe, each in the location that holds the
recipe and executed by that location's code server; launching again finds them done.

The webserver's GraphQL and the daemon run in this process (Dagster's own schema and
iterations); the code servers and the runs they launch are processes of their own."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import yaml
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster._grpc.client import DagsterGrpcClient

from modelops.cli import main
from modelops.config.recipe_shard import shard_of
from modelops.defs.keys import TAG_TRAINING, RecipeKeys
from modelops_tests.fixtures.dagster_daemon import (
    answer_graphql_in_process,
    daemon_thread,
    queued_coordinator,
)
from modelops_tests.fixtures.processes import REPO, settings_env, workspace_env
from modelops_tests.fixtures.workspace import LENIENT, make_workspace, write_recipe

URL = "http://in-process"
SHARDS = 2
# "demo" is make_workspace's recipe; the names are chosen so each shard holds two.
RECIPES = ["alpha", "beta", "demo", "zulu"]
START_TIMEOUT_S = 180


def location(index: int) -> str:
    return f"shard{index}"


def start_server(settings, folder: Path, index: int) -> tuple[subprocess.Popen, Path, Path]:
    """``dagster api grpc`` for shard ``index`` on a Unix socket: (process, socket, log)."""
    socket, log = folder / f"{location(index)}.sock", folder / f"{location(index)}.log"
    command = [sys.executable, "-m", "dagster", "api", "grpc"]
    command += ["--module-name", "modelops.definitions", "--working-directory", str(REPO)]
    command += ["--socket", str(socket), "--location-name", location(index)]
    env = settings_env(settings, MODELOPS_RECIPE_SHARD=f"{index}/{SHARDS}")
    with open(log, "w") as out:  # the child keeps its own descriptor
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    return process, socket, log


@contextlib.contextmanager
def code_servers(settings, folder: Path) -> Iterator[Path]:
    """One code server per shard; yields the workspace file naming them. Each server's
    environment is the workspace's plus its ``MODELOPS_RECIPE_SHARD``, and the runs it
    launches inherit it."""
    servers = []
    try:
        for index in range(SHARDS):
            servers.append(start_server(settings, folder, index))
        for process, socket, log in servers:
            wait_for_server(process, socket, log)
        entries = [
            {"grpc_server": {"socket": str(socket), "location_name": location(i)}}
            for i, (_, socket, _) in enumerate(servers)
        ]
        workspace = folder / "workspace.yaml"
        workspace.write_text(yaml.safe_dump({"load_from": entries}), encoding="utf-8")
        yield workspace
    finally:
        for process, _, _ in servers:
            process.terminate()
            process.wait(timeout=60)


def wait_for_server(process: subprocess.Popen, socket: Path, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"code server exited {process.returncode}: {log.read_text()}")
        if socket.exists():
            try:
                DagsterGrpcClient(socket=str(socket)).ping("up")
                return
            except Exception:  # noqa: BLE001 - not answering yet
                pass
        time.sleep(0.5)
    raise AssertionError(f"code server on {socket} did not answer: {log.read_text()}")


def location_recipes(context) -> dict[str, set[str]]:
    """``{location name: recipes whose assets it holds}``."""
    held = {}
    for entry in context.create_request_context().get_code_location_entries().values():
        assert entry.code_location is not None, entry.load_error
        recipes = set()
        for repository in entry.code_location.get_repositories().values():
            recipes |= {node.asset_key.path[0] for node in repository.get_asset_node_snaps()}
        held[entry.origin.location_name] = recipes
    return held


def test_a_backfill_spans_code_locations_by_shard(tiny_catalog, tmp_path, monkeypatch, capsys):
    settings = make_workspace(tmp_path, tiny_catalog, rows=240, recipe=LENIENT)
    for name in RECIPES:
        if name != "demo":
            write_recipe(tmp_path, {"name": name, **LENIENT})
    expected = {location(i): {r for r in RECIPES if shard_of(r, SHARDS) == i} for i in (0, 1)}
    assert all(len(held) == 2 for held in expected.values()), expected  # the names' split
    for name, value in workspace_env(settings).items():
        monkeypatch.setenv(name, value)
    folder = tmp_path / "servers"
    folder.mkdir()
    with (
        dg.instance_for_test(overrides=queued_coordinator(2)) as instance,
        code_servers(settings, folder) as workspace,
        WorkspaceProcessContext(instance, WorkspaceFileTarget([str(workspace)])) as context,
    ):
        assert location_recipes(context) == expected
        answer_graphql_in_process(monkeypatch, context)
        with daemon_thread(context):
            code = main(["backfill", "--taxonomy", "demo:v1", "--url", URL, "--json", "--wait"])
            report = json.loads(capsys.readouterr().out)
            runs = instance.get_runs()
            assert code == 0, report
            assert sorted(report["launched"]) == RECIPES
            assert len(runs) == len(RECIPES)
            for run in runs:
                (recipe,) = {key.path[0] for key in run.asset_selection}
                assert set(run.asset_selection) == set(RecipeKeys.of(recipe).training)
                assert run.tags[TAG_TRAINING] == recipe
                origin = run.remote_job_origin.repository_origin.code_location_origin
                assert recipe in expected[origin.location_name]
                assert run.status == dg.DagsterRunStatus.SUCCESS
            # Launching again: every recipe's evaluation is materialized, nothing launches.
            code = main(["backfill", "--taxonomy", "demo:v1", "--url", URL, "--json"])
            again = json.loads(capsys.readouterr().out)
    assert code == 0
    assert sorted(again["already_done"]) == RECIPES and again["launched"] == []
