"""Every asset, check, sensor and schedule takes at most one modelops resource (the
``platform``, which nests the stores, or one store), plus what Dagster itself needs (the IO
manager)."""

from __future__ import annotations

import dagster as dg

from modelops.defs.build import build_definitions
from modelops.defs.resources import PlatformResource, build_resources
from modelops_tests.fixtures.workspace import make_workspace

DAGSTER_KEYS = {"io_manager"}


def _required(defs: dg.Definitions) -> dict[str, set[str]]:
    repo = defs.get_repository_def()
    graph = defs.resolve_asset_graph()
    out = {}
    for key in graph.get_all_asset_keys():
        assets_def = graph.get(key).assets_def
        out[f"asset {key.to_user_string()}"] = set(assets_def.required_resource_keys)
    for checks_def in repo.asset_checks_defs_by_key.values():
        out[f"check {checks_def.check_keys}"] = set(checks_def.required_resource_keys)
    for sensor in repo.sensor_defs:
        out[f"sensor {sensor.name}"] = set(sensor.required_resource_keys)
    for schedule in repo.schedule_defs:
        out[f"schedule {schedule.name}"] = set(schedule.required_resource_keys)
    return out


def test_each_definition_takes_at_most_one_modelops_resource(tiny_catalog, tmp_path):
    # a scheduled recipe, so that the schedule is looked at too
    settings = make_workspace(
        tmp_path, tiny_catalog, recipe={"retraining": {"schedule": "0 3 * * 1"}}
    )
    modelops_keys = set(build_resources(settings)) - DAGSTER_KEYS
    required = _required(build_definitions(settings))
    assert any(name.startswith("schedule") for name in required)
    assert any(name.startswith("sensor") for name in required)
    too_many = {
        name: sorted(keys & modelops_keys)
        for name, keys in required.items()
        if len(keys & modelops_keys) > 1
    }
    assert too_many == {}
    # and each of them that needs one takes the platform, not the stores one by one
    assert {k for keys in required.values() for k in keys & modelops_keys} == {"platform"}


def test_the_platform_nests_the_stores_it_is_built_from(tiny_catalog, tmp_path):
    settings = make_workspace(tmp_path, tiny_catalog)
    resources = build_resources(settings)
    platform = resources["platform"]
    assert isinstance(platform, PlatformResource)
    for key in ("runtime", "registry", "production_log", "artifact_store", "catalog"):
        assert getattr(platform, key) is resources[key]  # one object: shown once, by key
    built = platform.platform
    assert built.settings.database_url == settings.database_url
    assert built.settings.artifacts_uri == settings.artifacts_uri
    assert built.settings.home == settings.home
    assert built.registry.list("demo") == []
    assert built.catalog.source == platform.catalog.catalog.source
