"""``modelops backfill`` against a real Dagster webserver (``modelops ui``, behind the
browser guard): it launches a backfill of the taxonomy-version partition through Dagster's
GraphQL API, and skips finished work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from modelops.cli import main
from modelops.defs.build import build_definitions
from modelops.defs.resources import build_resources
from modelops_tests.fixtures.network import free_port
from modelops_tests.fixtures.processes import workspace_env
from modelops_tests.fixtures.workspace import LENIENT, make_workspace, write_v2

REPO = Path(__file__).resolve().parents[2]


def _env(settings, dagster_home: Path) -> dict[str, str]:
    return {"DAGSTER_HOME": str(dagster_home), **workspace_env(settings)}


@pytest.fixture
def webserver(tiny_catalog, tmp_path, monkeypatch):
    settings = make_workspace(tmp_path, tiny_catalog, recipe=LENIENT)
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = _env(settings, home)
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from modelops.cli import main; sys.exit(main())",
            "ui",
            "--no-daemon",
            "-p",
            str(port),
            "-w",
            str(REPO / "workspace.yaml"),
        ],
        cwd=tmp_path,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"{url}/server_info", timeout=2)
                break
            except OSError:
                if process.poll() is not None:
                    pytest.fail("modelops ui exited during start-up")
                time.sleep(0.5)
        else:
            pytest.fail("modelops ui did not answer within 120 s")
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield settings, home, url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_backfill_launches_through_dagster_and_skips_finished_work(webserver, tmp_path, capsys):
    settings, home, url = webserver
    write_v2(tmp_path)
    assert main(["backfill", "--taxonomy", "demo:v2", "--url", url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["launched"] == ["demo"] and report["already_done"] == []

    with dg.DagsterInstance.from_config(str(home)) as instance:
        (backfill,) = instance.get_backfills()
        assert backfill.backfill_id == report["backfill_id"]
        subset = backfill.asset_backfill_data.target_subset
        assert {k.to_user_string() for k in subset.asset_keys} == {
            "demo/training_dataset",
            "demo/mapped_candidate",
            "demo/adapter",
            "demo/evaluation",
            "demo/champion",
        }
        assert set(instance.get_dynamic_partitions("taxonomy_demo")) == {"v2"}
        assert set(instance.get_dynamic_partitions("base_models")) == {"tiny@r1"}
        assert backfill.title.startswith("taxonomy demo:v2")
        # What the daemon would run for that partition, done here in process.
        defs = build_definitions(settings)
        result = dg.materialize(
            list(defs.assets),
            partition_key="tiny@r1|v2",
            instance=instance,
            resources=build_resources(settings),
        )
        assert result.success

    assert main(["backfill", "--taxonomy", "demo:v2", "--url", url]) == 0
    assert "already evaluated; nothing to do" in capsys.readouterr().out
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert len(instance.get_backfills()) == 1


def test_backfill_errors_are_one_line(tiny_catalog, tmp_path, monkeypatch, capsys):
    settings = make_workspace(tmp_path, tiny_catalog)
    for name, value in _env(settings, tmp_path).items():
        monkeypatch.setenv(name, value)
    assert main(["backfill", "--taxonomy", "demo:v7", "--url", "http://127.0.0.1:9"]) == 1
    assert "v7.yaml: version v7 of taxonomy 'demo' not found" in capsys.readouterr().err
    assert main(["backfill", "--taxonomy", "other:v1"]) == 1
    assert "no recipe uses taxonomy 'other'" in capsys.readouterr().err
    write_v2(tmp_path)
    assert main(["backfill", "--taxonomy", "demo:v2", "--url", "http://127.0.0.1:9"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no Dagster webserver answers at http://127.0.0.1:9" in err
