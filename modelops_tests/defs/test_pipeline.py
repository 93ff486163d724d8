"""The recipe asset group materialized in process with the tiny model: registry,
artifacts, gates, promotion, reproduce; and the production path (S3 + PostgreSQL)."""

from __future__ import annotations

import json

import dagster as dg
import pytest
import yaml

from modelops.cli import main
from modelops.config.gates import GateSettings
from modelops.config.recipe import load_recipes
from modelops.defs.build import build_definitions
from modelops.defs.partitions import sync_partitions
from modelops.defs.recipe.training_assets import CHECK_DESCRIPTIONS
from modelops.defs.resources import build_resources
from modelops.domain.gates import apply_gates
from modelops.lifecycle.platform import Platform
from modelops.lifecycle.reproduce import reproduce
from modelops.ml.catalog import Catalog
from modelops_tests.fixtures.partitions import run_partition
from modelops_tests.fixtures.processes import workspace_env
from modelops_tests.fixtures.workspace import make_workspace, write_recipe


def materialize(settings, instance, version="v1"):
    """What a backfill of one taxonomy-version partition runs, in process."""
    sync_partitions(
        instance, load_recipes(settings.recipes_dir), Catalog.load(settings.catalog_path)
    )
    return run_partition(settings, instance, version)


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def test_asset_graph_shape(tiny_catalog, tmp_path):
    """A change to the graph shows up here in review."""
    defs = build_definitions(make_workspace(tmp_path, tiny_catalog))
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    training = {
        "demo/training_dataset",
        "demo/mapped_candidate",
        "demo/adapter",
        "demo/evaluation",
        "demo/champion",
    }
    assert keys == training | {"demo/batch_scoring", "demo/drift_report"}
    parents = {
        k.to_user_string(): sorted(p.to_user_string() for p in graph.get(k).parent_keys)
        for k in graph.get_all_asset_keys()
    }
    assert parents == {
        "demo/training_dataset": [],
        "demo/mapped_candidate": ["demo/training_dataset"],
        "demo/adapter": ["demo/mapped_candidate", "demo/training_dataset"],
        "demo/evaluation": ["demo/adapter"],
        "demo/champion": ["demo/evaluation"],
        "demo/batch_scoring": ["demo/champion"],
        "demo/drift_report": ["demo/batch_scoring"],
    }
    assert {graph.get(k).group_name for k in graph.get_all_asset_keys()} == {"demo"}
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    # the test recipe switches beat_baseline off: that gate is no check at all
    gates = [name for name in CHECK_DESCRIPTIONS if name != "beats_baseline"]
    assert checks == {("demo/evaluation", name) for name in gates} | {
        ("demo/drift_report", "no_drift")
    }
    on = build_definitions(
        make_workspace(tmp_path / "on", tiny_catalog, recipe={"gates": {"beat_baseline": True}})
    )
    assert ("demo/evaluation", "beats_baseline") in {
        (c.asset_key.to_user_string(), c.name) for c in on.resolve_asset_graph().asset_check_keys
    }
    partitions = {
        graph.get(k).partitions_def
        for k in graph.get_all_asset_keys()
        if k.to_user_string() in training
    }
    # taxonomy version x base revision (docs/concepts.md)
    assert partitions == {
        dg.MultiPartitionsDefinition(
            {
                "taxonomy": dg.DynamicPartitionsDefinition(name="taxonomy_demo"),
                "base": dg.DynamicPartitionsDefinition(name="base_models"),
            }
        )
    }
    assert graph.get(dg.AssetKey(["demo", "drift_report"])).partitions_def is None
    assert sorted(s.name for s in defs.sensors) == [
        "base_models",
        "drift_retraining",
        "landing_files",
        "production_windows",
        "taxonomy_versions",
    ]
    assert [j.name for j in defs.jobs] == ["demo__retrain"]
    assert list(defs.schedules) == []  # the test recipe sets no retraining.schedule


def test_check_specs_cover_every_gate():
    from modelops.domain.evaluation import evaluate

    ev = evaluate([0, 1], [[0.9, 0.1], [0.2, 0.8]], ["a", "b"])
    checks = apply_gates(ev, settings=GateSettings()).checks
    assert [c.name for c in checks] == list(CHECK_DESCRIPTIONS)


def test_new_recipe_file_appears_as_its_own_group(tiny_catalog, tmp_path):
    settings = make_workspace(tmp_path, tiny_catalog)
    write_recipe(tmp_path, {"name": "second"})
    groups = {a.group_names_by_key[k] for a in build_definitions(settings).assets for k in a.keys}
    assert groups == {"demo", "second"}


def test_materialize_trains_registers_promotes_and_reproduces(
    tiny_catalog, tmp_path, instance, monkeypatch, capsys
):
    settings = make_workspace(tmp_path, tiny_catalog)
    result = materialize(settings, instance)
    assert result.success
    platform = Platform.from_settings(settings)
    versions = platform.registry.list("demo")
    assert len(versions) == 1
    adapter = versions[0]
    assert platform.registry.alias("demo", "champion").id == adapter.id
    assert adapter.status == "champion"
    assert adapter.gate["passed"] is True
    # the metadata shows it to four decimals; the registry keeps the full value
    assert round(adapter.metrics["test_macro_f1"], 4) == (
        result.asset_materializations_for_node("demo__evaluation")[0].metadata["macro_f1"].value
    )
    promote = [e for e in platform.registry.audit("demo") if e.action == "promote"]
    assert len(promote) == 1 and promote[0].who.startswith("dagster run")
    assert promote[0].evidence["gate"]["passed"] is True

    # The adapter directory in the artifact store: PEFT files, head, labels, manifest.
    key = platform.store.key_for(adapter.artifact_uri)
    out = platform.store.get_dir(key, tmp_path / "fetched", expected_sha256=adapter.artifact_sha256)
    assert {
        "adapter_config.json",
        "adapter_model.safetensors",
        "head.safetensors",
        "labels.json",
        "manifest.json",
    } <= {p.name for p in out.iterdir()}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["weights_sha256"] == adapter.weights_sha256
    assert manifest["dataset"]["fingerprint"] == adapter.dataset_fingerprint
    assert manifest["base_model"]["ref"] == "tiny@r1"
    assert set(manifest["libraries"]) >= {"torch", "transformers", "peft"}
    # Dagster metadata: the dataset's data version is its fingerprint; checks all passed.
    ds_event = result.asset_materializations_for_node("demo__training_dataset")[0]
    assert ds_event.tags["dagster/data_version"] == adapter.dataset_fingerprint
    # No champion yet: the regression gates compared nothing. They are not shown as
    # passed but as skipped (failed with severity WARN, which does not block).
    gates = {
        e.check_name: e
        for e in result.get_asset_check_evaluations()
        if e.check_name in CHECK_DESCRIPTIONS
    }
    assert set(gates) == {
        "min_macro_f1",
        "no_regression",
        "no_label_regression",
        "gain_worth_cost",
    }
    assert gates["min_macro_f1"].passed
    for name in ("no_regression", "no_label_regression", "gain_worth_cost"):
        skipped = gates[name]
        assert skipped.passed is False and skipped.severity == dg.AssetCheckSeverity.WARN
        assert skipped.description == "skipped: no champion yet"
        assert skipped.metadata["state"].value == "skipped"
    adapter_md = result.asset_materializations_for_node("demo__adapter")[0].metadata
    assert adapter_md["selected_epoch"].value == adapter.lineage["selected_epoch"]
    assert adapter_md["lora_weights_nonzero"].value == adapter.lineage["lora_nonzero"]
    assert adapter_md["adapter_method"].value == adapter.lineage["adapter_method"] == "lora"
    assert adapter.metrics["selected_epoch"] == adapter.lineage["selected_epoch"]
    eval_md = result.asset_materializations_for_node("demo__evaluation")[0].metadata
    assert eval_md["confusion_matrix"].value.startswith(
        "![confusion matrix](data:image/png;base64,"
    )

    # reproduce: same lineage, same machine -> identical sha256 (library call and CLI).
    report = reproduce(platform, adapter.id, emit=lambda _m: None)
    assert report["identical"] is True
    assert report["reproduced_weights_sha256"] == adapter.weights_sha256
    for name, value in workspace_env(settings).items():
        monkeypatch.setenv(name, value)
    assert main(["reproduce", str(adapter.id), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["identical"] is True

    # Materializing again with nothing changed reuses the registered adapter.
    assert materialize(settings, instance).success
    assert len(platform.registry.list("demo")) == 1


def test_a_worse_candidate_is_not_promoted(tiny_catalog, tmp_path, instance):
    settings = make_workspace(tmp_path, tiny_catalog)
    assert materialize(settings, instance).success
    platform = Platform.from_settings(settings)
    champion = platform.registry.alias("demo", "champion")

    # Same data, but a head that starts random and barely trains: clearly worse.
    write_recipe(
        tmp_path, {"head": {"init": "random"}, "training": {"epochs": 1, "learning_rate": 1e-6}}
    )
    result = materialize(settings, instance)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["no_regression"].passed is False
    assert "champion" in checks["no_regression"].description
    assert "demo__champion" not in {e.step_key for e in result.get_asset_materialization_events()}
    candidate = platform.registry.list("demo")[0]
    assert candidate.id != champion.id
    assert candidate.status == "rejected"
    assert candidate.gate["passed"] is False
    assert platform.registry.alias("demo", "champion").id == champion.id
    assert candidate.metrics["champion_test_macro_f1"] is not None


def test_production_path_s3_artifacts_and_postgres_registry(
    tiny_catalog, tmp_path, instance, s3_bucket, pg_url
):
    endpoint, bucket = s3_bucket
    settings = make_workspace(
        tmp_path,
        tiny_catalog,
        database_url=pg_url,
        artifacts_uri=f"s3://{bucket}/modelops",
        s3_endpoint_url=endpoint,
    )
    assert materialize(settings, instance).success
    platform = Platform.from_settings(settings)
    champion = platform.registry.alias("demo", "champion")
    assert champion.artifact_uri.startswith(f"s3://{bucket}/modelops/adapters/demo/")
    assert reproduce(platform, champion.id, emit=lambda _m: None)["identical"] is True


def test_definitions_module_loads_repository_recipes(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    monkeypatch.setenv("MODELOPS_RECIPES", str(repo / "recipes"))
    monkeypatch.setenv("MODELOPS_HOME", str(tmp_path / ".modelops"))
    from modelops.definitions import defs as load

    defs = load()  # @dg.definitions: reads the environment when called
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert "demo_intents/champion" in keys


def test_bad_recipe_fails_definitions_load_naming_file_and_field(tiny_catalog, tmp_path):
    settings = make_workspace(tmp_path, tiny_catalog)
    path = tmp_path / "recipes" / "demo.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["training"]["batch_size"] = 0
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(Exception, match=r"demo\.yaml: training\.batch_size: "):
        build_definitions(settings)


def test_recipe_schedule_requests_a_retraining_run(tiny_catalog, tmp_path, instance):
    import datetime

    settings = make_workspace(
        tmp_path, tiny_catalog, recipe={"retraining": {"schedule": "0 3 * * *"}}
    )
    defs = build_definitions(settings)
    (schedule,) = defs.schedules
    assert schedule.name == "demo__periodic_retrain" and schedule.cron_schedule == "0 3 * * *"
    assert schedule.job_name == "demo__retrain"
    instance.add_dynamic_partitions("taxonomy_demo", ["v1"])  # what `modelops init` does
    with (
        dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime.datetime(2026, 11, 28, 3, tzinfo=datetime.UTC),
            resources=build_resources(settings),
            repository_def=defs.get_repository_def(),
        ) as context,
        dg.partition_loading_context(dynamic_partitions_store=instance),
    ):
        (request,) = list(schedule.evaluate_tick(context).run_requests)
    # no serving adapter yet: the data's version on the base the recipe resolves to
    assert request.partition_key == "tiny@r1|v1"
    assert request.run_key == "demo-scheduled-2026-11-28T03:00:00+00:00"
