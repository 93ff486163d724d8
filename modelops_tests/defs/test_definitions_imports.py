"""Loading the definitions, and one tick of every sensor, import no ML library: a code
server (which also evaluates the sensors) and every process that loads the code location
pay neither the import time nor the memory of torch, transformers, peft or evidently. The
steps that need them import them in their asset bodies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from modelops_tests.fixtures.workspace import make_workspace, write_recipe

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "peft", "evidently")
RECIPES = ("demo", "second", "third")

CHILD = """
import json, sys
import dagster as dg
from modelops.definitions import defs
from modelops.config.settings import Settings
from modelops.defs.build import build_definitions
from modelops.defs.resources import build_resources

def heavy():
    return sorted({m.split(".")[0] for m in sys.modules} & HEAVY)

loaded = defs()
groups = {k.path[0] for k in loaded.resolve_asset_graph().get_all_asset_keys()}
settings = Settings.from_env()
built = build_definitions(settings)
built.resolve_asset_graph()
after_load = heavy()
resources = build_resources(settings)
requested = []
with dg.DagsterInstance.ephemeral() as instance:
    for sensor in built.sensors:
        with dg.build_sensor_context(
            instance=instance, resources=resources, definitions=built
        ) as context:
            data = sensor.evaluate_tick(context)
        for request in data.run_requests or []:
            requested += ["/".join(k.path) for k in request.asset_selection or []]
result = {
    "groups": sorted(groups),
    "sensors": sorted(s.name for s in built.sensors),
    "drift_jobs": sorted(j.name for j in built.resolve_sensor_def("drift_retraining").jobs),
    "requested": requested,
    "after_load": after_load,
    "after_ticks": heavy(),
}
print("RESULT " + json.dumps(result))
"""


def test_loading_the_definitions_and_ticking_every_sensor_import_no_ml_library(
    tiny_catalog, tmp_path
):
    settings = make_workspace(tmp_path, tiny_catalog)
    for name in RECIPES[1:]:
        write_recipe(tmp_path, {"name": name})
    # a file waiting for one recipe: the landing tick lists it and asks for its scoring
    incoming = settings.home / "landing" / "second" / "incoming"
    incoming.mkdir(parents=True)
    (incoming / "batch.csv").write_text("text\nwhere is my card\n", encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "MODELOPS_HOME": str(settings.home),
        "MODELOPS_RECIPES": str(settings.recipes_dir),
        "MODELOPS_CATALOG": str(settings.catalog_path),
        "MODELOPS_ARTIFACTS": settings.artifacts_uri,
        "MODELOPS_DATABASE_URL": settings.database_url,
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    out = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {set(HEAVY)!r}\n{CHILD}"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (line,) = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    result = json.loads(line.removeprefix("RESULT "))
    # the definitions were built, every recipe's assets included; one sensor per kind of
    # event watches every recipe
    assert set(RECIPES) <= set(result["groups"])
    assert result["sensors"] == [
        "base_models",
        "drift_retraining",
        "landing_files",
        "production_windows",
        "taxonomy_versions",
    ]
    assert result["drift_jobs"] == sorted(f"{name}__retrain" for name in RECIPES)
    assert result["requested"] == ["second/batch_scoring"]
    assert result["after_load"] == [], f"loading the definitions imported {result['after_load']}"
    # the code server evaluates the sensors: a tick must not load them either
    assert result["after_ticks"] == [], f"a round of sensor ticks imported {result['after_ticks']}"
