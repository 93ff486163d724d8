"""``modelops backfill`` pairs each recipe with its own asset node by key: Dagster answers
with the nodes as a set, in any order, so pairing by position put statuses on the wrong
recipe."""

from __future__ import annotations

import pytest

from modelops.defs import webserver
from modelops.defs.keys import RecipeKeys
from modelops_tests.fixtures.workspace import make_workspace, write_recipe

RECIPES = ["alpha", "demo", "zulu"]


def node(recipe: str, materialized: list[str]) -> dict:
    return {
        "assetKey": {"path": list(RecipeKeys.of(recipe).evaluation.path)},
        "repository": {"name": "__repository__", "location": {"name": "modelops"}},
        "assetPartitionStatuses": {"materializedPartitions": materialized,
                                   "failedPartitions": []},
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
        if query is webserver.ADD_PARTITION:
            return {"addDynamicPartition": {"__typename": "AddDynamicPartitionSuccess"}}
        if query is webserver.LAUNCH:
            return {"launchPartitionBackfill": {"__typename": "LaunchBackfillSuccess",
                                                "backfillId": "b1"}}
        raise AssertionError(query)

    monkeypatch.setattr(webserver.GraphQL, "call", call)
    report = webserver.launch_taxonomy_backfill(settings, "demo", "v1", url="http://x")
    assert report["already_done"] == ["zulu"]
    assert sorted(report["launched"]) == ["alpha", "demo"]
    (params,) = [v["params"] for q, v in calls if q is webserver.LAUNCH]
    selected = {tuple(a["path"])[0] for a in params["assetSelection"]}
    assert selected == {"alpha", "demo"}


def test_a_recipe_the_instance_does_not_know_is_named(tiny_catalog, tmp_path, monkeypatch):
    settings = make_workspace(tmp_path, tiny_catalog)
    write_recipe(tmp_path, {"name": "alpha"})

    def call(self, query, variables):
        return {"assetNodes": [node("demo", []), node("demo", [])]}  # alpha missing

    monkeypatch.setattr(webserver.GraphQL, "call", call)
    with pytest.raises(webserver.ModelopsError, match="recipe.* alpha .*reload"):
        webserver.launch_taxonomy_backfill(settings, "demo", "v1", url="http://x")
