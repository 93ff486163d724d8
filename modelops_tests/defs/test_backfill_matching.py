"""``modelops backfill`` pairs each recipe with its own asset node by key: Dagster answers
with the nodes as a set, in any order, so pairing by position put statuses on the wrong
recipe. One backfill per recipe. Two launches racing on the same version start one
backfill."""

from __future__ import annotations

import threading

import pytest

from modelops.defs import webserver
from modelops.defs.keys import RecipeKeys
from modelops_tests.fixtures.workspace import make_workspace, write_recipe

RECIPES = ["alpha", "demo", "zulu"]


def node(recipe: str, materialized: list[str]) -> dict:
    return {
        "assetKey": {"path": list(RecipeKeys.of(recipe).evaluation.path)},
        "repository": {"name": "__repository__", "location": {"name": "modelops"}},
        "assetPartitionStatuses": {"materializedPartitions": materialized, "failedPartitions": []},
    }


@pytest.mark.parametrize("order", [[0, 1, 2], [2, 1, 0], [1, 2, 0]])
def test_three_recipes_each_get_their_own_status(tiny_catalog, tmp_path, monkeypatch, order):
    settings = make_workspace(tmp_path, tiny_catalog)
    for name in RECIPES:
        write_recipe(tmp_path, {"name": name})
    done = {"zulu"}  # only zulu's evaluation of v1 is materialized
    nodes = [node(r, ["v1"] if r in done else []) for r in RECIPES]
    calls = []

    def call(self, query, variables):
        calls.append((query, variables))
        if query is webserver.STATUS_QUERY:
            return {"assetNodes": [nodes[i] for i in order]}
        if query is webserver.MATERIALIZED:
            assert variables["partitions"] == ["tiny@r1|v1"]  # version x current base
            recipe_name = variables["key"]["path"][0]
            found = [{"partition": "tiny@r1|v1"}] if recipe_name in done else []
            return {"assetOrError": {"assetMaterializations": found}}
        if query is webserver.RUNNING_BACKFILLS:
            return {"partitionBackfillsOrError": {"results": []}}
        if query is webserver.ADD_PARTITION:
            return {"addDynamicPartition": {"__typename": "AddDynamicPartitionSuccess"}}
        if query is webserver.LAUNCH:
            return {
                "launchPartitionBackfill": {
                    "__typename": "LaunchBackfillSuccess",
                    "backfillId": "b1",
                }
            }
        raise AssertionError(query)

    monkeypatch.setattr(webserver.GraphQL, "call", call)
    report = webserver.launch_taxonomy_backfill(settings, "demo", "v1", url="http://x")
    assert report["already_done"] == ["zulu"]
    assert sorted(report["launched"]) == ["alpha", "demo"]
    launches = [v["params"] for q, v in calls if q is webserver.LAUNCH]
    assert [p["partitionNames"] for p in launches] == [["tiny@r1|v1"]] * 2
    added = [(v["name"], v["key"]) for q, v in calls if q is webserver.ADD_PARTITION]
    assert sorted(added) == [("base_models", "tiny@r1"), ("taxonomy_demo", "v1")]  # once each
    # One backfill per recipe, each selecting that recipe's assets alone, tagged with it.
    selected = [{tuple(a["path"])[0] for a in p["assetSelection"]} for p in launches]
    assert sorted(selected, key=sorted) == [{"alpha"}, {"demo"}]
    for params, (recipe,) in zip(launches, selected, strict=True):
        tags = {t["key"]: t["value"] for t in params["tags"]}
        assert tags["modelops/training"] == recipe and recipe in params["title"]
    assert sorted(b["recipe"] for b in report["backfills"]) == ["alpha", "demo"]


def test_a_recipe_the_instance_does_not_know_is_named(tiny_catalog, tmp_path, monkeypatch):
    settings = make_workspace(tmp_path, tiny_catalog)
    write_recipe(tmp_path, {"name": "alpha"})

    def call(self, query, variables):
        return {"assetNodes": [node("demo", []), node("demo", [])]}  # alpha missing

    monkeypatch.setattr(webserver.GraphQL, "call", call)
    with pytest.raises(webserver.ModelopsError, match="recipe.* alpha .*reload"):
        webserver.launch_taxonomy_backfill(settings, "demo", "v1", url="http://x")


class FakeDagster:
    """A webserver that keeps the backfills it launched as running (REQUESTED)."""

    def __init__(self):
        self.backfills: list[dict] = []
        self.lock = threading.Lock()
        self.launches = 0

    def call(self, query, variables):
        if query is webserver.STATUS_QUERY:
            return {"assetNodes": [node(p["path"][0], []) for p in variables["keys"]]}
        if query is webserver.MATERIALIZED:
            return {"assetOrError": {"assetMaterializations": []}}
        if query is webserver.RUNNING_BACKFILLS:
            with self.lock:
                return {"partitionBackfillsOrError": {"results": list(self.backfills)}}
        if query is webserver.ADD_PARTITION:
            return {"addDynamicPartition": {"__typename": "AddDynamicPartitionSuccess"}}
        if query is webserver.LAUNCH:
            params = variables["params"]
            threading.Event().wait(0.2)  # a slow server widens the race window
            with self.lock:
                self.launches += 1
                backfill = {
                    "id": f"b{self.launches}",
                    "partitionNames": params["partitionNames"],
                    "assetSelection": params["assetSelection"],
                }
                self.backfills.append(backfill)
            return {
                "launchPartitionBackfill": {
                    "__typename": "LaunchBackfillSuccess",
                    "backfillId": backfill["id"],
                }
            }
        raise AssertionError(query)


def test_two_backfills_racing_on_one_version_launch_once(tiny_catalog, tmp_path, monkeypatch):
    settings = make_workspace(tmp_path, tiny_catalog)
    fake = FakeDagster()
    monkeypatch.setattr(webserver.GraphQL, "call", lambda self, q, v: fake.call(q, v))
    barrier, reports = threading.Barrier(2), []

    def launch():
        barrier.wait()
        reports.append(webserver.launch_taxonomy_backfill(settings, "demo", "v1", url="http://x"))

    threads = [threading.Thread(target=launch) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert fake.launches == 1
    launched = [r for r in reports if r["backfill_id"]]
    skipped = [r for r in reports if not r["backfill_id"]]
    assert len(launched) == len(skipped) == 1
    assert skipped[0]["already_running"] == {"demo": "b1"} and skipped[0]["launched"] == []
    assert any(
        "already being backfilled by b1" in line for line in webserver.report_lines(skipped[0])
    )
