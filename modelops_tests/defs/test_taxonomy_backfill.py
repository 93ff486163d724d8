"""A new taxonomy version is a new partition: relabel, train, evaluate against the old
champion mapped onto the new labels, promote per version; old versions stay."""

from __future__ import annotations

import dagster as dg
import pytest
import yaml

from modelops.config.recipe import load_recipes
from modelops.defs.taxonomy import build_taxonomy_sensor
from modelops.lifecycle.platform import Platform
from modelops.lifecycle.reproduce import reproduce
from modelops_tests.fixtures.partitions import run_partition
from modelops_tests.fixtures.workspace import LENIENT, make_workspace, v2_document, write_v2


def tick(settings, instance):
    sensor = build_taxonomy_sensor(settings)
    return sensor(dg.build_sensor_context(instance=instance))


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def test_sensor_adds_new_versions_and_rejects_bad_files(tiny_catalog, tmp_path, instance):
    settings = make_workspace(tmp_path, tiny_catalog)
    first = tick(settings, instance)
    assert [r.partition_keys for r in first.dynamic_partitions_requests] == [["v1"]]
    instance.add_dynamic_partitions("taxonomy_demo", ["v1"])
    assert isinstance(tick(settings, instance), dg.SkipReason)

    write_v2(tmp_path)
    result = tick(settings, instance)
    request = result.dynamic_partitions_requests[0]
    assert (request.partitions_def_name, request.partition_keys) == ("taxonomy_demo", ["v2"])

    bad = v2_document()
    bad["mapping"]["retire"] = []  # invoice_copy now unaccounted for
    (tmp_path / "taxonomies" / "demo" / "v2.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(Exception, match=r"v2\.yaml: mapping"):
        tick(settings, instance)


def test_backfill_of_a_new_version_keeps_the_old_one(tiny_catalog, tmp_path, instance):
    settings = make_workspace(tmp_path, tiny_catalog, recipe=LENIENT)
    instance.add_dynamic_partitions("taxonomy_demo", ["v1"])
    assert run_partition(settings, instance, "v1").success
    platform = Platform.from_settings(settings)
    v1_champion = platform.registry.alias("demo", "champion")
    assert v1_champion.taxonomy_version == "v1"

    write_v2(tmp_path)
    instance.add_dynamic_partitions("taxonomy_demo", ["v2"])
    result = run_partition(settings, instance, "v2")
    assert result.success

    ds_meta = result.asset_materializations_for_node("demo__training_dataset")[0].metadata
    assert ds_meta["taxonomy_version"].value == "v2"
    assert ds_meta["review_rows"].value > 0  # card_lost texts no rule decides
    assert ds_meta["retired_rows"].value > 0
    # The v1 champion is not offered as a mapped candidate: the split leaves rows to review.
    mapped_meta = result.asset_materializations_for_node("demo__mapped_candidate")[0].metadata
    assert mapped_meta["mapped_adapter_id"].value == "none"
    assert "left" in mapped_meta["outcome"].value and "rows to review" in (
        mapped_meta["outcome"].value
    )
    eval_meta = result.asset_materializations_for_node("demo__evaluation")[0].metadata
    assert "mapped onto v2 labels" in eval_meta["champion_compared"].value
    # card_stolen / card_missing come from the split rules: left out of the comparison
    assert "whose labels no split rule derives (2 labels left out)" in (
        eval_meta["champion_compared"].value
    )
    assert eval_meta["champion_id"].value == v1_champion.id
    assert eval_meta["review_rows"].value == ds_meta["review_rows"].value

    v2_adapter = platform.registry.alias("demo", "champion", taxonomy_version="v2")
    assert v2_adapter is not None and v2_adapter.taxonomy_version == "v2"
    assert platform.registry.alias("demo", "champion").id == v2_adapter.id  # serving switched
    assert platform.registry.alias("demo", "champion", taxonomy_version="v1").id == v1_champion.id
    assert v2_adapter.lineage["mapping_fingerprint"]
    labels = v2_adapter.lineage["dataset"]["labels"]
    assert {"card_stolen", "card_missing", "billing_problem", "order_status"} <= set(labels)
    assert "card_lost" not in labels and "invoice_copy" not in labels

    # Running the same partition again does not redo finished work.
    count = len(platform.registry.list("demo"))
    assert run_partition(settings, instance, "v2").success
    assert len(platform.registry.list("demo")) == count
    # The old version's adapter still reproduces from its own lineage.
    assert reproduce(platform, v1_champion.id, emit=lambda _m: None)["identical"] is True
    # Dagster keeps both partitions' history.
    key = dg.AssetKey(["demo", "champion"])
    assert instance.get_materialized_partitions(key) == {"tiny@r1|v1", "tiny@r1|v2"}


def test_partitions_are_the_versions_on_disk(tiny_catalog, tmp_path):
    make_workspace(tmp_path, tiny_catalog)
    write_v2(tmp_path)
    (loaded,) = load_recipes(tmp_path / "recipes")
    assert loaded.taxonomy_versions() == ["v1", "v2"]
