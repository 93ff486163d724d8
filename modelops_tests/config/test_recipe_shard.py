"""``MODELOPS_RECIPE_SHARD``: a code location holds the recipes whose name hashes to its
shard, every recipe is in exactly one shard, the same in every process, and a location
never reads another location's recipe files."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest

from modelops.config.errors import InputError, ModelopsError
from modelops.config.recipe_folder import RecipeFolder
from modelops.config.recipe_shard import RecipeShard, shard_of
from modelops.config.settings import Settings
from modelops_tests.fixtures.workspace import make_workspace, write_recipe

NAMES = [f"recipe{n:03d}" for n in range(400)]


@pytest.mark.parametrize("text", ["3", "a/4", "4/4", "-1/4", "0/0", "1/2/3", " / "])
def test_a_bad_shard_names_the_variable_and_the_form(text):
    with pytest.raises(ModelopsError) as err:
        Settings.from_env({"MODELOPS_RECIPE_SHARD": text})
    assert "MODELOPS_RECIPE_SHARD" in str(err.value) and "<index>/<count>" in str(err.value)


def test_unset_or_empty_means_one_location_holds_every_recipe():
    assert Settings.from_env({}).recipe_shard is None
    assert Settings.from_env({"MODELOPS_RECIPE_SHARD": ""}).recipe_shard is None
    assert Settings.from_env({"MODELOPS_RECIPE_SHARD": " 2/5 "}).recipe_shard == RecipeShard(2, 5)


def test_every_recipe_is_in_exactly_one_shard_and_shards_share_the_load():
    shards = [RecipeShard(i, 8) for i in range(8)]
    holders = [[s.index for s in shards if s.holds(name)] for name in NAMES]
    assert all(len(h) == 1 for h in holders)
    sizes = Counter(h[0] for h in holders)
    assert len(sizes) == 8  # no empty location
    assert max(sizes.values()) < 2 * len(NAMES) / 8  # none holds twice its share


def test_the_shard_of_a_name_is_the_same_in_another_process():
    """Not Python's ``hash()``, which is salted per process: a code server and the run
    it launches must agree."""
    code = (
        "from modelops.config.recipe_shard import shard_of;"
        f"print([shard_of(n, 7) for n in {NAMES[:50]!r}])"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == str([shard_of(n, 7) for n in NAMES[:50]])


def test_a_location_reads_only_its_own_recipe_files(tiny_catalog, tmp_path):
    settings = make_workspace(tmp_path, tiny_catalog)
    for name in ("alpha", "beta", "gamma", "delta", "omega"):
        write_recipe(tmp_path, {"name": name})
    names = sorted(p.stem for p in settings.recipes_dir.glob("*.yaml"))
    loaded = {
        i: [r.name for r in RecipeFolder(settings.recipes_dir, RecipeShard(i, 3)).load()]
        for i in range(3)
    }
    assert sorted(n for held in loaded.values() for n in held) == names
    assert all(held == sorted(held) for held in loaded.values())
    # a broken file of another shard is never read; one of this shard fails the load
    broken = next(n for n in (f"broken{k}" for k in range(100)) if shard_of(n, 3) != 0)
    (settings.recipes_dir / f"{broken}.yaml").write_text("name: [unclosed\n", encoding="utf-8")
    assert [r.name for r in RecipeFolder(settings.recipes_dir, RecipeShard(0, 3)).load()] == (
        loaded[0]
    )
    owner = RecipeShard(shard_of(broken, 3), 3)
    with pytest.raises(InputError) as err:
        RecipeFolder(settings.recipes_dir, owner).load()
    assert f"{broken}.yaml" in str(err.value)


def test_shared_folders_are_kept_apart_by_shard(tmp_path):
    (tmp_path / "recipes").mkdir()
    whole = RecipeFolder.shared(tmp_path / "recipes")
    part = RecipeFolder.shared(tmp_path / "recipes", RecipeShard(1, 2))
    assert whole is not part and part.shard == RecipeShard(1, 2)
    assert RecipeFolder.shared(tmp_path / "recipes", RecipeShard(1, 2)) is part


def test_a_teacher_in_another_shard_is_not_read_but_must_exist(tiny_catalog, tmp_path):
    settings = make_workspace(tmp_path, tiny_catalog)
    names = [f"r{k}" for k in range(40)]
    teacher = next(n for n in names if shard_of(n, 2) == 1)
    student = next(n for n in names if shard_of(n, 2) == 0)
    write_recipe(tmp_path, {"name": teacher})
    write_recipe(tmp_path, {"name": student, "distillation": {"teacher": teacher}})
    held = RecipeFolder(settings.recipes_dir, RecipeShard(0, 2)).load()
    assert student in [r.name for r in held] and teacher not in [r.name for r in held]
    (settings.recipes_dir / f"{teacher}.yaml").unlink()
    with pytest.raises(InputError) as err:
        RecipeFolder(settings.recipes_dir, RecipeShard(0, 2)).load()
    assert err.value.where == "distillation.teacher" and teacher in str(err.value)
