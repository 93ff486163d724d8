"""Code locations by shard (``MODELOPS_RECIPE_SHARD``): together they hold every recipe's
assets, jobs and schedules exactly once, each with its own event sensors over its own
recipes, and a location whose shard holds no recipe still loads."""

from __future__ import annotations

import dataclasses

from modelops.config.recipe_shard import RecipeShard
from modelops.defs.build import build_definitions
from modelops_tests.fixtures.workspace import make_workspace, write_recipe

NAMES = ["alpha", "beta", "gamma", "delta", "omega", "sigma"]


def keys_and_jobs(defs):
    keys = {tuple(k.path) for k in defs.resolve_asset_graph().get_all_asset_keys()}
    jobs = {j.name for j in defs.jobs if not j.name.startswith("__")}
    return keys, jobs


def test_shards_split_the_recipes_definitions_without_overlap(tiny_catalog, tmp_path):
    settings = make_workspace(tmp_path, tiny_catalog)
    for name in NAMES:
        write_recipe(tmp_path, {"name": name, "retraining": {"schedule": "0 3 * * *"}})
    whole_keys, whole_jobs = keys_and_jobs(build_definitions(settings))
    assert {k[0] for k in whole_keys} == {"demo", *NAMES}
    seen_keys, seen_jobs, schedules = [], [], []
    for index in range(3):
        shard = dataclasses.replace(settings, recipe_shard=RecipeShard(index, 3))
        defs = build_definitions(shard)
        keys, jobs = keys_and_jobs(defs)
        recipes = {k[0] for k in keys}
        seen_keys += keys
        seen_jobs += jobs
        schedules += [s.name for s in defs.schedules]
        sensors = {s.name for s in defs.sensors}
        assert "taxonomy_versions" in sensors
        if recipes:  # the event sensors watch this location's recipes only
            assert {"landing_files", "base_models"} <= sensors
            base = next(s for s in defs.sensors if s.name == "base_models")
            watched = base.asset_selection.resolve(defs.resolve_asset_graph())
            assert {k.path[0] for k in watched} == recipes
    assert sorted(seen_keys) == sorted(whole_keys)  # each asset in exactly one location
    assert sorted(seen_jobs) == sorted(whole_jobs)
    assert len(schedules) == len(set(schedules)) == len(NAMES)


def test_a_location_without_recipes_loads(tiny_catalog, tmp_path):
    settings = make_workspace(tmp_path, tiny_catalog)  # one recipe: "demo"
    empty = next(i for i in range(4) if not RecipeShard(i, 4).holds("demo"))
    defs = build_definitions(dataclasses.replace(settings, recipe_shard=RecipeShard(empty, 4)))
    keys, jobs = keys_and_jobs(defs)
    assert not keys and not jobs
    assert [s.name for s in defs.sensors] == ["taxonomy_versions"]
