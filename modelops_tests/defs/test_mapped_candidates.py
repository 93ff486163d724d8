"""A new taxonomy version gets the old champion through the mapping as a candidate of its
own: built, gated, served at once (mapped_first, mapped_only), compared with the trained
adapter, loaded by the predictor, monitored and reproduced."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pytest
import yaml

from modelops.config.errors import InputError
from modelops.config.recipe import load_recipe
from modelops.domain.mapped_head import MappedHead
from modelops.domain.taxonomy_mapping import load_chain
from modelops.lifecycle.dataset import build_dataset
from modelops.lifecycle.fetch import FetchedAdapter, load_adapter
from modelops.lifecycle.mapped import is_mapped
from modelops.lifecycle.platform import Platform
from modelops.lifecycle.reproduce import reproduce
from modelops.lifecycle.taxonomy_change import (
    choose_winner,
    offer_mapped_candidate,
    should_train,
)
from modelops.lifecycle.train import train_adapter
from modelops.monitoring.reference import load_bundle
from modelops.serving.model_pool import ModelPool
from modelops.serving.predictor import Predictor
from modelops_tests.fixtures.partitions import run_partition
from modelops_tests.fixtures.serving import MONITORING
from modelops_tests.fixtures.workspace import (
    LENIENT,
    make_workspace,
    merge,
    v2_document,
    write_recipe,
)

V1_GONE = {"card_lost", "billing_double_charge", "payment_failed", "invoice_copy", "track_order"}


def recipe(policy: str) -> dict:
    return merge(
        LENIENT,
        {
            "monitoring": MONITORING,
            "taxonomy_changes": {"policy": policy},
            "training": {"epochs": 1},
        },
    )


def write_version(root, *, split_every_row: bool) -> None:
    """v2 of the demo taxonomy: rename, merge, retire, keep; and when ``split_every_row``
    a split whose last rule matches any text, so its rules decide every row; else
    card_lost merges into card_missing (a merge-only version)."""
    doc = v2_document()
    if split_every_row:
        rules = doc["mapping"]["split"]["card_lost"]["rules"]
        rules[1] = {"label": "card_missing", "patterns": ["."]}
    else:
        del doc["mapping"]["split"]
        doc["labels"] = [x for x in doc["labels"] if x["name"] != "card_stolen"]
        doc["mapping"]["rename"]["card_lost"] = "card_missing"
    path = root / "taxonomies" / "demo" / "v2.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")


def meta(result, node: str) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node(node)[0].metadata.items()}


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        inst.add_dynamic_partitions("taxonomy_demo", ["v1", "v2"])
        yield inst


def test_mapped_first_serves_the_mapped_candidate_then_keeps_the_better(
    tiny_catalog, tmp_path, instance
):
    settings = make_workspace(tmp_path, tiny_catalog, rows=240, recipe=recipe("mapped_first"))
    first = run_partition(settings, instance, "v1")
    assert first.success
    assert meta(first, "demo__mapped_candidate")["mapped_adapter_id"] == "none"
    platform = Platform.from_settings(settings)
    v1 = platform.registry.alias("demo", "champion")

    write_version(tmp_path, split_every_row=False)
    result = run_partition(settings, instance, "v2")
    assert result.success
    offered = meta(result, "demo__mapped_candidate")
    assert offered["promoted"] is True and offered["mapped_from"] == v1.id
    mapped = platform.registry.get(offered["mapped_adapter_id"])
    assert is_mapped(mapped) and mapped.taxonomy_version == "v2"
    assert mapped.weights_sha256 == v1.weights_sha256  # no new weights
    assert mapped.lineage["mapped_from"]["adapter_id"] == v1.id
    assert mapped.lineage["mapped_from"]["mapping_fingerprint"]
    promoted = [e for e in platform.registry.audit(adapter_id=mapped.id) if e.action == "promote"]
    assert "mapped candidate passed every gate" in promoted[-1].why
    # a taxonomy change goes through the cost gate too: the mapped candidate was weighed
    # against the v1 champion (its predictions mapped), both measured, not skipped
    (cost,) = [c for c in mapped.gate["checks"] if c["name"] == "gain_worth_cost"]
    assert cost["passed"] and not cost["skipped"] and cost["metadata"]["cost_ratio"] > 0

    # The trained adapter, on the same test rows, against the mapped one.
    evaluated = meta(result, "demo__evaluation")
    trained = platform.registry.get(evaluated["adapter_id"])
    assert not is_mapped(trained) and trained.dataset_fingerprint == mapped.dataset_fingerprint
    assert evaluated["mapped_candidate"] == mapped.id
    versus = trained.metrics["taxonomy_change"]  # full values; the metadata rounds them
    assert versus["mapped_macro_f1"] == pytest.approx(mapped.metrics["test_macro_f1"])
    assert versus["trained_macro_f1"] == pytest.approx(trained.metrics["test_macro_f1"])
    assert versus["margin"] == pytest.approx(
        abs(versus["trained_macro_f1"] - versus["mapped_macro_f1"])
    )
    for field in ("mapped_macro_f1", "trained_macro_f1"):
        assert evaluated[field] == round(versus[field], 4)
    assert evaluated["winner_margin"] == round(versus["margin"], 4)
    assert evaluated["mapped_seconds"] > 0 and evaluated["trained_seconds"] > 0
    trained_better = versus["trained_macro_f1"] > versus["mapped_macro_f1"] + 1e-9
    winner = trained if trained_better else mapped
    assert evaluated["winner_id"] == winner.id
    assert platform.registry.alias("demo", "champion", taxonomy_version="v2").id == winner.id
    assert platform.registry.alias("demo", "serving").id == winner.id
    for version in (trained, mapped):  # the registry says which won, by how much, at what cost
        stored = platform.registry.get(version.id).metrics["taxonomy_change"]
        assert stored["winner_id"] == winner.id
        assert round(stored["margin"], 4) == evaluated["winner_margin"]
        assert stored["mapped_seconds"] == pytest.approx(mapped.metrics["build_seconds"])


def test_mapped_only_needs_no_training_and_serves_monitors_reproduces(
    tiny_catalog, tmp_path, instance
):
    settings = make_workspace(tmp_path, tiny_catalog, rows=240, recipe=recipe("mapped_only"))
    assert run_partition(settings, instance, "v1").success
    platform = Platform.from_settings(settings)
    v1 = platform.registry.alias("demo", "champion")

    write_version(tmp_path, split_every_row=True)  # rename, merge, retire, keep, split
    result = run_partition(settings, instance, "v2")
    assert result.success
    assert meta(result, "demo__training_dataset")["review_rows"] == 0
    adapter_key = dg.AssetKey(["demo", "adapter"])
    assert instance.get_materialized_partitions(adapter_key) == {"tiny@r1|v1"}  # v2 not trained
    assert all(is_mapped(v) for v in platform.registry.list("demo") if v.taxonomy_version == "v2")
    serving = platform.registry.alias("demo", "serving")
    assert is_mapped(serving) and serving.taxonomy_version == "v2"

    # The predictor loads it like any adapter: the old model's probabilities, summed.
    loaded = load_recipe(settings.recipes_dir / "demo.yaml")
    mapping = load_chain(loaded.taxonomies_root, "demo", "v1", "v2")
    texts = ["my card was stolen last night", "I lost my card", "refund the double charge"]
    with FetchedAdapter(platform, v1) as fetched:
        old = load_adapter(platform, fetched)
        expected = MappedHead(mapping, old.labels).apply(old.predict_proba(texts, 32), texts)
    predictor = Predictor(platform, "demo", log=None, top_k=len(mapping.target_labels))
    assert predictor.adapter.id == serving.id
    assert predictor.labels == list(mapping.target_labels)
    assert not V1_GONE & set(predictor.labels)
    for row, prediction in zip(expected, predictor.score(texts), strict=True):
        got = {item["label"]: item["p"] for item in prediction.top_k}
        assert got == pytest.approx(dict(zip(predictor.labels, row, strict=True)))
        assert prediction.label == predictor.labels[int(np.argmax(row))]

    # The HTTP service's model pool (one base, many adapters) maps the same way.
    pool = ModelPool(platform)
    pooled = pool.load(serving)
    assert pooled.labels == list(mapping.target_labels)
    assert pool.probabilities(pooled, texts) == pytest.approx(expected, abs=1e-5)

    # Its drift reference was built with it, in the new labels.
    with FetchedAdapter(platform, serving) as fetched:
        bundle = load_bundle(fetched.path)
    assert bundle is not None and set(bundle.reference.predicted) <= set(predictor.labels)
    assert serving.lineage["drift_thresholds"]

    # reproduce re-derives it: the same weights, the same mapping; a changed rule shows.
    report = reproduce(platform, serving.id, emit=lambda _m: None)
    assert report["identical"] is True
    assert report["reproduced_weights_sha256"] == v1.weights_sha256
    path = tmp_path / "taxonomies" / "demo" / "v2.yaml"
    path.write_text(path.read_text().replace("theft", "robbery"))
    changed = reproduce(platform, serving.id, emit=lambda _m: None)
    assert changed["identical"] is False
    assert changed["reproduced_mapping_fingerprint"] != changed["recorded_mapping_fingerprint"]

    # An incremental retraining cannot warm-start from it (other labels): it trains in full.
    dataset = build_dataset(platform, loaded, emit=lambda _m: None, taxonomy_version="v2")
    retrained = train_adapter(platform, loaded, dataset, emit=lambda _m: None, mode="incremental")
    assert not is_mapped(retrained) and retrained.lineage["warm_start"] is None
    assert retrained.lineage["mode"] == "full"


def test_the_better_candidate_wins_and_a_tie_goes_to_the_cheaper():
    costs = {"trained": 120.0, "mapped": 3.0}
    ok = {"trained": True, "mapped": True}
    assert choose_winner({"trained": 0.91, "mapped": 0.90}, ok, costs, "macro_f1") == (
        "trained",
        "better macro_f1",
    )
    assert choose_winner({"trained": 0.89, "mapped": 0.90}, ok, costs, "macro_f1")[0] == "mapped"
    assert choose_winner({"trained": 0.9, "mapped": 0.9}, ok, costs, "macro_f1") == (
        "mapped",
        "tie on macro_f1: the cheaper wins",
    )
    failed = {"trained": True, "mapped": False}
    assert choose_winner({"trained": 0.5, "mapped": 0.9}, failed, costs, "macro_f1") == (
        "trained",
        "the other failed its gates",
    )
    none = {"trained": False, "mapped": False}
    assert choose_winner({"trained": 0.5, "mapped": 0.9}, none, costs, "macro_f1")[0] == "none"


def test_policies_decide_whether_to_train(tiny_catalog, tmp_path):
    make_workspace(tmp_path, tiny_catalog, recipe=recipe("mapped_only"))
    loaded = load_recipe(tmp_path / "recipes" / "demo.yaml")
    assert should_train(loaded, {"adapter_id": 4})[0] is False
    assert should_train(loaded, {"adapter_id": None, "reason": "adds a label"}) == (True, "")
    make_workspace(tmp_path, tiny_catalog, recipe=recipe("mapped_first"))
    loaded = load_recipe(tmp_path / "recipes" / "demo.yaml")
    assert should_train(loaded, {"adapter_id": 4}) == (True, "")

    # train: no mapped candidate at all, even with a champion to map from.
    settings = make_workspace(tmp_path, tiny_catalog, recipe=recipe("train"))
    loaded = load_recipe(settings.recipes_dir / "demo.yaml")
    platform = Platform.from_settings(settings)
    dataset = build_dataset(platform, loaded, emit=lambda _m: None)
    offer = offer_mapped_candidate(platform, loaded, dataset, who="tester")
    assert offer.adapter_id is None and "policy is train" in offer.reason
    assert platform.registry.list("demo") == []


def test_the_default_policy_and_a_bad_one(tiny_catalog, tmp_path):
    make_workspace(tmp_path, tiny_catalog)
    loaded = load_recipe(tmp_path / "recipes" / "demo.yaml")
    assert loaded.recipe.taxonomy_changes.policy == "mapped_first"
    assert loaded.recipe.taxonomy_changes.metric == "macro_f1"
    fingerprint = loaded.fingerprint()
    write_recipe(tmp_path, {"taxonomy_changes": {"policy": "mapped_only"}})
    assert load_recipe(tmp_path / "recipes" / "demo.yaml").fingerprint() == fingerprint
    write_recipe(tmp_path, {"taxonomy_changes": {"policy": "sometimes"}})
    with pytest.raises(InputError, match=r"demo\.yaml.*taxonomy_changes\.policy"):
        load_recipe(tmp_path / "recipes" / "demo.yaml")
