"""A base move through Dagster weighs cost: two recipes served on ``tiny@a``, the alias
moved to the costlier ``tiny@w`` (hidden 40, 3 layers), the sensor's runs executed with the
recipes' default cost policy. ``thrifty``'s new adapter gains nothing (its training was
made worse with the move): the ``gain_worth_cost`` check fails and ``serving`` stays on
tiny@a. ``worthy``'s old champion was poor, so the new adapter's gain pays for the cost: it
is promoted. The cost comes from the loaded models (``parameter_meter``), not a timing."""

from __future__ import annotations

import dagster as dg
import pytest

from modelops.defs.keys import RecipeKeys
from modelops.lifecycle import inference_cost
from modelops.lifecycle.platform import Platform
from modelops_tests.fixtures.base_moves import move_alias, run_requests, tick_bases
from modelops_tests.fixtures.cost_meters import parameter_meter
from modelops_tests.fixtures.partitions import run_partition
from modelops_tests.fixtures.tiny_bases import write_bases_catalog, write_tiny_bases
from modelops_tests.fixtures.workspace import make_workspace, write_recipe

# Every gate but the cost gate lenient; the cost gate as a recipe has it by default.
RECIPE = {
    "gates": {
        "min_macro_f1": 0.0,
        "max_macro_f1_drop": 1.0,
        "max_label_f1_drop": 1.0,
        "min_label_support": 1,
    },
    "training": {"epochs": 1},
    "monitoring": {"window_size": 30, "n_bootstrap": 20, "false_alarm_rate": 0.05},
}
# A head that starts random and barely trains: clearly worse than a probe-started one.
WORSE = {
    "head": {"init": "random"},
    "training": {"epochs": 1, "learning_rate": 1e-6, "select_best": False},
}


@pytest.fixture(scope="module")
def moved(tmp_path_factory):
    bases = write_tiny_bases(tmp_path_factory.mktemp("bases"), keys=["bert_a", "bert_w"])
    root = tmp_path_factory.mktemp("rebase-cost")
    catalog = write_bases_catalog(
        root / "base_models.yaml", bases, aliases={"tiny@stable": "bert_a"}
    )
    settings = make_workspace(root, catalog, rows=300, recipe={"name": "thrifty", **RECIPE})
    write_recipe(root, {"name": "worthy", **RECIPE, **WORSE})
    with pytest.MonkeyPatch.context() as patch, dg.instance_for_test() as instance:
        patch.setattr(inference_cost, "measure_inference", parameter_meter)
        assert run_partition(settings, instance, "v1").success
        platform = Platform.from_settings(settings)
        before = {r: platform.registry.alias(r, "champion") for r in ("thrifty", "worthy")}
        # reviewed with the move: thrifty's training made worse, worthy's made normal
        write_recipe(root, {"name": "thrifty", **RECIPE, **WORSE})
        write_recipe(root, {"name": "worthy", **RECIPE})
        move_alias(catalog, bases, "bert_w")
        done = dict(
            (request.run_key.split("-")[0], result)
            for request, result in run_requests(settings, instance, tick_bases(settings, instance))
        )
        yield instance, platform, before, done
        platform.registry.close()


def evaluation_meta(instance, recipe: str) -> dict:
    (record,) = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=RecipeKeys.of(recipe).evaluation, asset_partitions=["tiny@w|v1"]
        ),
        limit=1,
    ).records
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def cost_check(result):
    (check,) = [
        e for e in result.get_asset_check_evaluations() if e.check_name == "gain_worth_cost"
    ]
    return check


def test_a_costlier_base_without_a_gain_does_not_move_serving(moved):
    instance, platform, before, done = moved
    check = cost_check(done["thrifty"])
    assert check.passed is False
    failed = {e.check_name for e in done["thrifty"].get_asset_check_evaluations() if not e.passed}
    assert failed == {"gain_worth_cost"}
    champion = platform.registry.alias("thrifty", "champion")
    assert champion.id == before["thrifty"].id and champion.base_model == "tiny@a"
    (rejected,) = [v for v in platform.registry.list("thrifty") if v.base_model == "tiny@w"]
    assert rejected.status == "rejected"
    meta = evaluation_meta(instance, "thrifty")
    assert meta["cost_gate"] == "failed" and meta["costlier"] is True
    assert meta["inference_cost_ratio"] > 1.1 and meta["cost_gain_lower_bound"] <= 0
    assert meta["cost_required_gain"] > 0 and meta["champion_cost_inference_seconds_per_32"] > 0
    assert meta["verdict"].startswith(
        f"adapter {rejected.id} on tiny@w failed gate(s) gain_worth_cost; champion "
        f"{champion.id} on tiny@a keeps serving. Cost: inference cost "
    )
    assert "inference_seconds_per_32" in meta["side_by_side"]
    assert "Inference cost, candidate / champion:" in meta["side_by_side"]


def test_a_costlier_base_with_a_gain_worth_it_is_promoted(moved):
    instance, platform, before, done = moved
    assert done["worthy"].success and cost_check(done["worthy"]).passed
    champion = platform.registry.alias("worthy", "champion")
    assert champion.id != before["worthy"].id and champion.base_model == "tiny@w"
    meta = evaluation_meta(instance, "worthy")
    assert meta["cost_gate"] == "passed" and meta["costlier"] is True
    assert meta["cost_gain"] >= meta["cost_required_gain"] > 0
    assert meta["cost_gain_lower_bound"] > 0
    assert "worth it" in meta["verdict"]
