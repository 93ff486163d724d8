"""``RecipeFolder``: what ``load_recipes`` gives, re-reading only the recipe files (and
taxonomy files) that changed since the last load."""

from __future__ import annotations

import os

import pytest
import yaml

from modelops.config.errors import InputError
from modelops.config.recipe import load_recipes
from modelops.config.recipe_folder import RecipeFolder
from modelops_tests.fixtures.workspace import make_workspace, write_recipe


def touch_later(path, text: str) -> None:
    """Rewrite ``path``, its mtime a second later (file systems with coarse clocks)."""
    before = os.stat(path).st_mtime_ns
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))


def test_unchanged_files_are_not_read_again_and_changed_ones_are(tiny_catalog, tmp_path):
    settings = make_workspace(tmp_path, tiny_catalog)
    write_recipe(tmp_path, {"name": "other"})
    folder = RecipeFolder(settings.recipes_dir)
    first = folder.load()
    assert [r.name for r in first] == [r.name for r in load_recipes(settings.recipes_dir)]
    again = folder.load()
    assert all(a is b for a, b in zip(first, again, strict=True))  # nothing re-read
    # one recipe edited: only that one is read again, with its new content
    path = settings.recipes_dir / "other.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["retraining"] = {"on_drift": False}
    touch_later(path, yaml.safe_dump(doc))
    demo, other = folder.load()
    assert demo is first[0] and other is not first[1]
    assert other.recipe.retraining.on_drift is False
    # its taxonomy file edited: every recipe on it is read again
    touch_later(other.taxonomy_path, other.taxonomy_path.read_text(encoding="utf-8"))
    assert all(a is not b for a, b in zip((demo, other), folder.load(), strict=True))
    # a new file appears, a file goes away
    write_recipe(tmp_path, {"name": "third"})
    path.unlink()
    assert [r.name for r in folder.load()] == ["demo", "third"]


def test_a_bad_recipe_raises_naming_its_file_and_shared_folders(tiny_catalog, tmp_path):
    settings = make_workspace(tmp_path, tiny_catalog)
    folder = RecipeFolder.shared(settings.recipes_dir)
    assert RecipeFolder.shared(str(settings.recipes_dir)) is folder
    folder.load()
    path = settings.recipes_dir / "demo.yaml"
    touch_later(path, path.read_text(encoding="utf-8") + "unknown_field: 1\n")
    with pytest.raises(InputError, match="demo.yaml"):
        folder.load()
    with pytest.raises(InputError, match="recipes directory not found"):
        RecipeFolder(tmp_path / "nowhere").load()
