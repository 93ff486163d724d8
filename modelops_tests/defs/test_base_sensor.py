"""The ``base_models`` sensor: an alias move, or a recipe's ``base_model`` line changed,
re-adapts the recipes that follow it on the new revision, one run per recipe x taxonomy
version x base revision; nothing moved, nothing requested."""

from __future__ import annotations

import dagster as dg
import pytest

from modelops.defs.keys import RecipeKeys
from modelops_tests.fixtures.base_moves import move_alias, serve, tick_bases
from modelops_tests.fixtures.tiny_bases import write_bases_catalog, write_tiny_bases
from modelops_tests.fixtures.workspace import make_workspace, write_recipe


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    return write_tiny_bases(tmp_path_factory.mktemp("bases"), keys=["bert_a", "bert_w"])


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def test_alias_move_and_recipe_line_request_one_run_each(bases, tmp_path, instance):
    catalog = write_bases_catalog(
        tmp_path / "base_models.yaml", bases, aliases={"tiny@stable": "bert_a"}
    )
    settings = make_workspace(tmp_path, catalog)
    write_recipe(tmp_path, {"name": "other"})  # a second recipe following tiny@stable
    serve(settings, "demo", "tiny@a")
    serve(settings, "other", "tiny@a")

    nothing = tick_bases(settings, instance)
    assert not nothing.run_requests and "no base moved" in nothing.skip_message

    move_alias(catalog, bases, "bert_w")
    moved = tick_bases(settings, instance)
    requests = {r.run_key: r for r in moved.run_requests}
    assert set(requests) == {"demo-rebase-v1-tiny@w", "other-rebase-v1-tiny@w"}
    demo = requests["demo-rebase-v1-tiny@w"]
    assert demo.partition_key == "tiny@w|v1"  # the serving version on the new revision
    assert set(demo.asset_selection) == set(RecipeKeys.of("demo").training)
    assert demo.tags["modelops/mode"] == "full" and demo.tags["modelops/base"] == "tiny@w"
    assert "tiny@a -> tiny@w" in demo.tags["modelops/reason"]
    # the new revision (and the serving version) are partitions now, in the UI
    assert instance.get_dynamic_partitions("base_models") == ["tiny@w"]
    assert instance.get_dynamic_partitions("taxonomy_demo") == ["v1"]

    # The same move seen again: the same run keys (Dagster launches each once).
    again = tick_bases(settings, instance)
    assert {r.run_key for r in again.run_requests} == set(requests)

    # Once a partition's evaluation exists (passed or not), it is not requested again.
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=RecipeKeys.of("other").evaluation, partition="tiny@w|v1")
    )
    later = tick_bases(settings, instance)
    assert {r.run_key for r in later.run_requests} == {"demo-rebase-v1-tiny@w"}


def test_recipe_base_line_change_is_a_move(bases, tmp_path, instance):
    catalog = write_bases_catalog(
        tmp_path / "base_models.yaml", bases, aliases={"tiny@stable": "bert_a"}
    )
    settings = make_workspace(tmp_path, catalog)
    serve(settings, "demo", "tiny@a")
    assert not tick_bases(settings, instance).run_requests
    write_recipe(tmp_path, {"base_model": "tiny@w"})  # the reviewed recipe change
    (request,) = tick_bases(settings, instance).run_requests
    assert request.run_key == "demo-rebase-v1-tiny@w"
    assert request.partition_key == "tiny@w|v1"
    # Pinned back to the serving revision: nothing to do.
    write_recipe(tmp_path, {"base_model": "tiny@a"})
    assert not tick_bases(settings, instance).run_requests


def test_no_champion_no_request_and_an_unknown_base_is_named(bases, tmp_path, instance):
    catalog = write_bases_catalog(
        tmp_path / "base_models.yaml", bases, aliases={"tiny@stable": "bert_w"}
    )
    settings = make_workspace(tmp_path, catalog)
    # Nothing serves yet: the first training is a taxonomy backfill, not a rebase.
    assert not tick_bases(settings, instance).run_requests
    serve(settings, "demo", "tiny@a")
    write_recipe(tmp_path, {"base_model": "tiny@nope"})
    with pytest.raises(Exception, match="tiny@nope"):
        tick_bases(settings, instance)
