"""``modelops shards``: the recipes each code location would hold, as the locations
themselves select them."""

from __future__ import annotations

import json

from modelops.cli import main
from modelops.config.recipe_folder import RecipeFolder
from modelops.config.recipe_shard import RecipeShard
from modelops_tests.fixtures.workspace import make_workspace, write_recipe


def test_shards_lists_what_each_location_loads(tiny_catalog, tmp_path, capsys, monkeypatch):
    settings = make_workspace(tmp_path, tiny_catalog)
    for n in range(7):
        write_recipe(tmp_path, {"name": f"recipe{n}"})
    monkeypatch.setenv("MODELOPS_RECIPES", str(settings.recipes_dir))
    assert main(["shards", "--count", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["count"] == 3 and report["recipes"] == 8
    for entry in report["shards"]:
        index = int(entry["shard"].split("/")[0])
        loaded = RecipeFolder(settings.recipes_dir, RecipeShard(index, 3)).load()
        assert entry["recipes"] == [r.name for r in loaded]


def test_the_default_count_keeps_locations_small_and_errors_are_one_line(
    tmp_path, capsys, monkeypatch
):
    folder = tmp_path / "recipes"
    folder.mkdir()
    for n in range(120):
        (folder / f"r{n:03d}.yaml").write_text("not read\n", encoding="utf-8")
    monkeypatch.setenv("MODELOPS_RECIPES", str(folder))
    assert main(["shards"]) == 0
    out = capsys.readouterr().out
    assert "120 recipes" in out and "3 code location(s)" in out  # 40 a location
    assert out.count("MODELOPS_RECIPE_SHARD=") == 3
    assert main(["shards", "--count", "0"]) == 1
    assert "--count 0" in capsys.readouterr().err
    monkeypatch.setenv("MODELOPS_RECIPES", str(tmp_path / "missing"))
    assert main(["shards"]) == 1
    assert "recipes directory not found" in capsys.readouterr().err
