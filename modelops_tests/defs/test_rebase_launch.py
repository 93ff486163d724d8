"""``modelops rebase`` launches one Dagster backfill per recipe x partition key over
GraphQL: the recipes following the base, their serving version on the new revision,
registered first."""

from __future__ import annotations

import pytest

from modelops.cli import main
from modelops.config.errors import ModelopsError
from modelops.defs import webserver
from modelops_tests.fixtures.base_moves import move_alias, serve
from modelops_tests.fixtures.processes import workspace_env
from modelops_tests.fixtures.tiny_bases import write_bases_catalog, write_tiny_bases
from modelops_tests.fixtures.workspace import make_workspace, write_recipe


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    return write_tiny_bases(tmp_path_factory.mktemp("bases"), keys=["bert_a", "bert_w"])


class FakeDagster:
    """Answers the webserver's queries; ``done`` holds the (recipe, key) evaluated."""

    def __init__(self, done=()):
        self.done = set(done)
        self.calls: list[tuple[str, dict]] = []

    def call(self, query, variables):
        self.calls.append((query, variables))
        if query is webserver.STATUS_QUERY:
            return {
                "assetNodes": [
                    {"assetKey": k, "repository": {"name": "r", "location": {"name": "l"}}}
                    for k in variables["keys"]
                ]
            }
        if query is webserver.MATERIALIZED:
            hit = (variables["key"]["path"][0], variables["partitions"][0]) in self.done
            return {"assetOrError": {"assetMaterializations": [{}] if hit else []}}
        if query is webserver.RUNNING_BACKFILLS:
            return {"partitionBackfillsOrError": {"results": []}}
        if query is webserver.ADD_PARTITION:
            return {"addDynamicPartition": {"__typename": "AddDynamicPartitionSuccess"}}
        if query is webserver.LAUNCH:
            n = sum(q is webserver.LAUNCH for q, _ in self.calls)
            return {
                "launchPartitionBackfill": {
                    "__typename": "LaunchBackfillSuccess",
                    "backfillId": f"b{n}",
                }
            }
        raise AssertionError(query)

    def of(self, query) -> list[dict]:
        return [v for q, v in self.calls if q is query]


def test_rebase_launches_the_followers_on_the_new_revision(bases, tmp_path, monkeypatch, capsys):
    catalog = write_bases_catalog(
        tmp_path / "base_models.yaml", bases, aliases={"tiny@stable": "bert_a"}
    )
    settings = make_workspace(tmp_path, catalog)
    write_recipe(tmp_path, {"name": "other"})
    write_recipe(tmp_path, {"name": "pinned", "base_model": "tiny@a"})  # follows a revision
    for recipe in ("demo", "other", "pinned"):
        serve(settings, recipe, "tiny@a")
    move_alias(catalog, bases, "bert_w")
    for name, value in workspace_env(settings).items():
        monkeypatch.setenv(name, value)
    fake = FakeDagster(done={("other", "tiny@w|v1")})
    monkeypatch.setattr(webserver.GraphQL, "call", lambda self, q, v: fake.call(q, v))

    assert main(["rebase", "--base", "tiny@stable", "--url", "http://x"]) == 0
    out = capsys.readouterr().out
    assert "other: tiny@stable (tiny@w) already evaluated; nothing to do" in out
    assert (
        "demo: launched backfill b1 of tiny@stable (tiny@w) (tiny@w|v1): http://x/runs/b/b1" in out
    )
    (params,) = [v["params"] for v in fake.of(webserver.LAUNCH)]
    assert params["partitionNames"] == ["tiny@w|v1"]
    assert {a["path"][0] for a in params["assetSelection"]} == {"demo"}  # not pinned
    tags = {t["key"]: t["value"] for t in params["tags"]}
    assert tags["modelops/base"] == "tiny@w" and tags["modelops/mode"] == "full"
    added = {(v["name"], v["key"]) for v in fake.of(webserver.ADD_PARTITION)}
    assert added == {("taxonomy_demo", "v1"), ("base_models", "tiny@w")}

    # A recipe named explicitly is rebased even when it follows another ref.
    report = webserver.launch_rebase(settings, "tiny@w", recipes=["pinned"], url="http://x")
    assert report["launched"] == ["pinned"] and report["base"] == "tiny@w"
    with pytest.raises(ModelopsError, match="no recipe named 'nope'"):
        webserver.launch_rebase(settings, "tiny@w", recipes=["nope"], url="http://x")
    assert main(["rebase", "--base", "tiny@missing", "--url", "http://x"]) == 1
    assert "tiny@missing" in capsys.readouterr().err
