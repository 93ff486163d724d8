"""The adaptation settings of issue 25: ``adapter.method: full``, ``training.layer_decay``
and ``training.contrastive`` change the recipe fingerprint only when used and survive the
manifest's recipe snapshot (what ``reproduce`` reads). Their bad values are among the cases
of ``test_recipe_taxonomy.py``."""

from __future__ import annotations

import pytest
import yaml

from modelops.config.recipe import Recipe, load_recipe
from modelops_tests.fixtures.workspace import BASE_RECIPE, FULL_ADAPTER, merge

FULL = {"adapter": {**FULL_ADAPTER["adapter"], "target_modules": ["query", "value"]}}
"""The LoRA fields at their defaults (what a snapshot holds) are accepted with ``full``."""


@pytest.fixture
def root(tmp_path):
    tax = tmp_path / "taxonomies" / "demo" / "v1.yaml"
    tax.parent.mkdir(parents=True)
    tax.write_text(
        yaml.safe_dump({"name": "demo", "version": "v1", "labels": [{"name": "a"}, {"name": "b"}]})
    )
    return tmp_path


def write(root, overrides: dict):
    """The base recipe with ``overrides`` merged in, its ``adapter`` section replaced (not
    merged) when they hold one."""
    doc = merge(BASE_RECIPE, {k: v for k, v in overrides.items() if k != "adapter"})
    if "adapter" in overrides:
        doc["adapter"] = overrides["adapter"]
    path = root / "recipes" / "demo.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def test_fingerprint_changes_only_when_the_new_settings_are_used(root):
    plain = load_recipe(write(root, {})).fingerprint()
    written_off = {"training": {"layer_decay": 1.0, "contrastive": None}}
    assert load_recipe(write(root, written_off)).fingerprint() == plain
    used = [
        {"training": {"layer_decay": 0.9}},
        {"training": {"contrastive": {}}},
        {"training": {"contrastive": {"margin": 0.2}}},
        FULL,
    ]
    prints = {load_recipe(write(root, o)).fingerprint() for o in used}
    assert plain not in prints and len(prints) == len(used)


def test_snapshot_holds_the_settings_and_validates_again(root):
    overrides = {**FULL, "training": {"layer_decay": 0.8, "contrastive": {"pairs_per_row": 6}}}
    loaded = load_recipe(write(root, overrides))
    snapshot = loaded.snapshot()["recipe"]
    assert snapshot["adapter"]["method"] == "full"
    assert snapshot["training"]["layer_decay"] == 0.8
    assert snapshot["training"]["contrastive"]["pairs_per_row"] == 6
    again = Recipe.model_validate(snapshot)
    assert again == loaded.recipe
