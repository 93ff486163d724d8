"""A base move through Dagster, in process: two recipes trained on ``tiny@a``, the alias
moved to ``tiny@w`` (another shape and tokenizer), the sensor's runs executed. Each new
adapter is evaluated beside the serving champion on the old base, on the same test rows,
with its cost; one passes its gates and serves (monitoring follows it, batch predictions
name the new base), the other fails a gate and the old champion keeps serving."""

from __future__ import annotations

import dagster as dg
import pytest

from modelops.defs.keys import RecipeKeys
from modelops.lifecycle.fetch import FetchedAdapter
from modelops.lifecycle.platform import Platform
from modelops.monitoring.reference import load_bundle
from modelops.serving.batch_scoring import score_batch
from modelops.serving.predictor import Predictor
from modelops.stores.serving_log import ServingLog
from modelops_tests.fixtures.base_moves import move_alias, run_requests, tick_bases
from modelops_tests.fixtures.partitions import run_partition
from modelops_tests.fixtures.tiny_bases import write_bases_catalog, write_tiny_bases
from modelops_tests.fixtures.workspace import make_workspace, write_recipe

# The cost gate off: tiny@w is costlier than tiny@a, and whether a tiny model's gain pays
# for it is chance (``test_rebase_cost`` moves a base through that gate).
LENIENT = {
    "gates": {
        "min_macro_f1": 0.0,
        "max_macro_f1_drop": 1.0,
        "max_label_f1_drop": 1.0,
        "weigh_cost": False,
    },
    "training": {"epochs": 1},
    "monitoring": {"window_size": 30, "n_bootstrap": 20, "false_alarm_rate": 0.05},
}


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    return write_tiny_bases(tmp_path_factory.mktemp("bases"), keys=["bert_a", "bert_w"])


@pytest.fixture(scope="module")
def moved(bases, tmp_path_factory):
    """Both recipes served on tiny@a, then the alias moved and the sensor's runs done;
    ``strict`` is reviewed along with the move to demand a macro-F1 no tiny model reaches."""
    root = tmp_path_factory.mktemp("rebase")
    catalog = write_bases_catalog(
        root / "base_models.yaml", bases, aliases={"tiny@stable": "bert_a"}
    )
    settings = make_workspace(root, catalog, rows=300, recipe={"name": "easy", **LENIENT})
    write_recipe(root, {"name": "strict", **LENIENT})
    (root / "recipes" / "demo.yaml").unlink(missing_ok=True)
    with dg.instance_for_test() as instance:
        assert run_partition(settings, instance, "v1").success
        platform = Platform.from_settings(settings)
        before = {r: platform.registry.alias(r, "champion") for r in ("easy", "strict")}
        write_recipe(
            root,
            {"name": "strict", **LENIENT, "gates": {"min_macro_f1": 0.999, "weigh_cost": False}},
        )
        move_alias(catalog, bases, "bert_w")
        data = tick_bases(settings, instance)
        done = run_requests(settings, instance, data)
        again = run_requests(settings, instance, tick_bases(settings, instance))
        yield settings, instance, platform, before, done, again


def evaluation_meta(instance, recipe: str, key: str) -> dict:
    (record,) = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=RecipeKeys.of(recipe).evaluation, asset_partitions=[key]),
        limit=1,
    ).records
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def test_two_recipes_are_re_adapted_once_each_side_by_side(moved):
    settings, instance, platform, before, done, again = moved
    assert sorted(r.run_key for r, _ in done) == [
        "easy-rebase-v1-tiny@w",
        "strict-rebase-v1-tiny@w",
    ]
    assert again == []  # seen twice: evaluated already, nothing launched again
    for recipe in ("easy", "strict"):
        assert before[recipe].base_model == "tiny@a"
        adapter_key = RecipeKeys.of(recipe).adapter
        # old-base and new-base adapters of one recipe, side by side in the UI
        assert instance.get_materialized_partitions(adapter_key) == {"tiny@a|v1", "tiny@w|v1"}
        new = [v for v in platform.registry.list(recipe) if v.base_model == "tiny@w"]
        assert len(new) == 1 and new[0].lineage["mode"] == "full"
        doc = new[0].metrics["side_by_side"]
        cand, champ = doc["candidate"], doc["champion"]
        assert doc["base_changed"] and doc["same_rows"]
        assert (cand["base_model"], champ["base_model"]) == ("tiny@w", "tiny@a")
        assert champ["adapter_id"] == before[recipe].id and cand["rows"] == champ["rows"] > 0
        assert set(cand["per_label_f1"]) == set(champ["per_label_f1"])
        for side in (cand, champ):  # both trained with the cost recorded
            for field in (
                "train_wall_seconds",
                "train_cpu_seconds",
                "peak_rss_bytes",
                "latency_seconds_per_32",
                "adapter_bytes",
                "base_bytes",
            ):
                assert side["cost"][field] > 0, (recipe, field)
        assert cand["cost"]["base_bytes"] != champ["cost"]["base_bytes"]  # other shapes
        meta = evaluation_meta(instance, recipe, "tiny@w|v1")
        assert meta["base_changed"] is True and meta["champion_base_model"] == "tiny@a"
        assert f"champion {before[recipe].id} (tiny@a)" in meta["side_by_side"]
        assert "latency_seconds_per_32" in meta["side_by_side"]
        (adapter_event,) = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=RecipeKeys.of(recipe).adapter, asset_partitions=["tiny@w|v1"]
            ),
            limit=1,
        ).records
        adapter_meta = adapter_event.asset_materialization.metadata
        assert adapter_meta["base_model"].value == "tiny@w"
        assert adapter_meta["cost_train_cpu_seconds"].value > 0


def test_the_gates_decide_and_monitoring_follows_the_new_champion(moved):
    settings, instance, platform, before, done, _ = moved
    easy = platform.registry.alias("easy", "champion")
    assert easy.base_model == "tiny@w" and easy.id != before["easy"].id
    with FetchedAdapter(platform, easy) as new, FetchedAdapter(platform, before["easy"]) as old:
        # the drift reference and thresholds were rebuilt on the new base, for this adapter
        new_bundle, old_bundle = load_bundle(new.path), load_bundle(old.path)
        assert new_bundle is not None and old_bundle is not None
        assert new.manifest["base_model"]["ref"] == "tiny@w"
        assert new.manifest["drift_thresholds"] != old.manifest["drift_thresholds"]
    # the batch path logs which base answered
    predictor = Predictor(platform, "easy", log=platform.production_log)
    score_batch(
        predictor,
        "b.csv",
        b"text\nmy card is lost\nreset my password\n",
        log=platform.production_log,
    )
    with ServingLog(settings.database_url) as log:
        assert set(log.base_models("easy").values()) == {"tiny@w"}

    # strict: the new-base adapter misses min_macro_f1; the old champion keeps serving
    strict = platform.registry.alias("strict", "champion")
    assert strict.id == before["strict"].id and strict.base_model == "tiny@a"
    (rejected,) = [v for v in platform.registry.list("strict") if v.base_model == "tiny@w"]
    assert rejected.status == "rejected" and not rejected.gate["passed"]
    verdict = rejected.metrics["side_by_side"]["verdict"]
    assert "failed gate(s) min_macro_f1" in verdict
    assert f"champion {strict.id} on tiny@a keeps serving" in verdict
    ((_, result),) = [(r, x) for r, x in done if r.run_key.startswith("strict-")]
    assert not result.success or not result.asset_materializations_for_node("strict__champion")
    meta = evaluation_meta(instance, "strict", "tiny@w|v1")
    assert "keeps serving" in meta["verdict"]
