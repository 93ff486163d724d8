"""The recipe's compute section as dagster-k8s/config tags, and the step values store
that the IO manager writes through."""

from __future__ import annotations

import json

import pytest

from modelops.config.errors import InputError, NotFoundError
from modelops.config.recipe import load_recipe
from modelops.defs.k8s import GPU_RESOURCE, K8S_CONFIG_TAG
from modelops.defs.recipe.jobs import build_retrain_job
from modelops.defs.recipe.training_assets import build_training_assets
from modelops.stores.step_values import StepValues
from modelops_tests.fixtures.workspace import make_workspace, write_recipe


def resources_of(tags: dict) -> dict:
    return json.loads(tags[K8S_CONFIG_TAG])["container_config"]["resources"]


def test_training_steps_ask_for_the_recipes_memory_and_gpu(tiny_catalog, tmp_path):
    make_workspace(tmp_path, tiny_catalog)
    path = write_recipe(tmp_path, {"compute": {"gpu": 1, "memory": "12Gi", "cpu": "4"}})
    loaded = load_recipe(path)
    steps = {a.key.path[-1]: resources_of(a.node_def.tags) for a in build_training_assets(loaded)}
    for heavy in ("adapter", "evaluation"):
        assert steps[heavy]["requests"] == {"cpu": "4", "memory": "12Gi"}
        assert steps[heavy]["limits"] == {"memory": "12Gi", GPU_RESOURCE: 1}
    for light in ("training_dataset", "champion"):
        assert GPU_RESOURCE not in steps[light]["limits"]
        assert steps[light]["requests"]["memory"] != "12Gi"
    run = resources_of(build_retrain_job(loaded).tags)
    assert run["limits"][GPU_RESOURCE] == 1


def test_no_gpu_asked_by_default_and_compute_is_not_in_the_fingerprint(tiny_catalog, tmp_path):
    make_workspace(tmp_path, tiny_catalog)
    default = load_recipe(write_recipe(tmp_path))
    tags = {a.key.path[-1]: resources_of(a.node_def.tags) for a in build_training_assets(default)}
    assert GPU_RESOURCE not in tags["adapter"]["limits"]
    bigger = load_recipe(write_recipe(tmp_path, {"compute": {"memory": "64Gi"}}))
    assert bigger.fingerprint() == default.fingerprint()


@pytest.mark.parametrize(
    ("compute", "field"),
    [
        ({"memory": "lots"}, "compute.memory"),
        ({"gpu": -1}, "compute.gpu"),
        ({"cpus": 2}, "compute"),
    ],
)
def test_bad_compute_names_the_field(tiny_catalog, tmp_path, compute, field):
    make_workspace(tmp_path, tiny_catalog)
    with pytest.raises(InputError) as info:
        load_recipe(write_recipe(tmp_path, {"compute": compute}))
    assert "demo.yaml" in str(info.value) and field in str(info.value)


def test_step_values_replace_and_name_what_is_missing(tmp_path):
    values = StepValues(str(tmp_path / "artifacts"))
    uri = values.put("demo/adapter/v1", {"adapter_id": 1})
    values.put("demo/adapter/v1", {"adapter_id": 2})
    assert values.get("demo/adapter/v1") == {"adapter_id": 2}
    assert uri == f"{tmp_path / 'artifacts'}/step-values/demo/adapter/v1.json"
    assert [p.name for p in (tmp_path / "artifacts/step-values/demo/adapter").iterdir()] == [
        "v1.json"
    ]
    with pytest.raises(NotFoundError, match=r"step-values/demo/adapter/v2\.json"):
        values.get("demo/adapter/v2")
    with pytest.raises(InputError):
        values.put("../escape", 1)


def test_step_values_on_s3(s3_bucket):
    endpoint, bucket = s3_bucket
    values = StepValues(f"s3://{bucket}/p", s3_endpoint_url=endpoint)
    assert values.put("r/a/v1", {"x": [1, 2]}) == f"s3://{bucket}/p/step-values/r/a/v1.json"
    assert values.get("r/a/v1") == {"x": [1, 2]}
    with pytest.raises(NotFoundError, match="r/a/v2.json"):
        values.get("r/a/v2")
