"""Recipes and taxonomies load, and bad ones fail naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modelops.config.errors import InputError
from modelops.config.recipe import load_recipe, load_recipes
from modelops.config.taxonomy import load_taxonomy
from modelops_tests.fixtures.workspace import BASE_RECIPE, merge, write_recipe

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def root(tmp_path):
    tax = tmp_path / "taxonomies" / "demo" / "v1.yaml"
    tax.parent.mkdir(parents=True)
    tax.write_text(
        yaml.safe_dump(
            {
                "name": "demo",
                "version": "v1",
                "labels": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
            }
        )
    )
    return tmp_path


def test_repository_demo_recipe_loads():
    loaded = load_recipe(REPO / "recipes" / "demo_intents.yaml")
    assert loaded.recipe.base_model == "minilm@stable"
    assert loaded.taxonomy.ref == "demo_intents:v1"
    assert len(loaded.taxonomy.label_names) >= 12
    assert loaded.source_uris()[0].endswith("data/demo/support_requests.csv")


def test_valid_recipe_resolves_paths_and_defaults(root):
    loaded = load_recipe(write_recipe(root))
    assert loaded.name == "demo"
    assert loaded.taxonomy.label_names == ["a", "b", "c"]
    assert loaded.source_uris() == [str((root / "data" / "requests.csv").resolve())]
    assert loaded.recipe.training.batch_size == 32
    assert loaded.recipe.head.pooling == "mean"


def test_fingerprint_ignores_gates_and_description_but_not_training(root):
    first = load_recipe(write_recipe(root)).fingerprint()
    same = load_recipe(write_recipe(root, {"description": "other", "gates": {"min_macro_f1": 0.5}}))
    changed = load_recipe(write_recipe(root, {"training": {"seed": 99}}))
    assert same.fingerprint() == first
    assert changed.fingerprint() != first


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"training": {"epochs": 0}}, "training.epochs", "greater than 0"),
        ({"training": {"epochs": "many"}}, "training.epochs", "integer"),
        ({"adapter": {"r": -1}}, "adapter.r", "greater than 0"),
        ({"adapter": {"method": "prefix"}}, "adapter.method", "lora"),
        ({"adapter": {"target_modules": []}}, "adapter.target_modules", "at least 1"),
        ({"base_model": "/models/minilm"}, "base_model", "pattern"),
        ({"gates": {"min_macro_f1": 1.5}}, "gates.min_macro_f1", "less than or equal"),
        ({"gates": {"surprise": 1}}, "gates.surprise", "Extra inputs"),
        ({"gates": {"cost": {"same_cost_ratio": 0.9}}}, "gates.cost.same_cost_ratio", "1"),
        ({"gates": {"cost": {"metric": "f1"}}}, "gates.cost.metric", "'macro_f1' or 'accuracy'"),
        (
            {"gates": {"cost": {"min_gain_per_cost_doubling": -0.01}}},
            "gates.cost.min_gain_per_cost_doubling",
            "greater than or equal to 0",
        ),
        ({"gates": {"cost": {"confidence": 1.0}}}, "gates.cost.confidence", "less than 1"),
        ({"gates": {"cost": {"per_doubling": 1}}}, "gates.cost.per_doubling", "Extra inputs"),
        ({"gates": {"weigh_cost": "maybe"}}, "gates.weigh_cost", "boolean"),
        ({"task": "translation"}, "task", "text_classification"),
        ({"data": {"sources": []}}, "data.sources", "at least 1"),
        ({"head": {"pooling": "max"}}, "head.pooling", "mean"),
        ({"training": {"layer_decay": 0}}, "training.layer_decay", "greater than 0"),
        ({"training": {"layer_decay": 1.5}}, "training.layer_decay", "less than or equal to 1"),
        (
            {"training": {"contrastive": {"pairs_per_row": 0}}},
            "training.contrastive.pairs_per_row",
            "greater than 0",
        ),
        ({"training": {"contrastive": {"margin": 1.0}}}, "training.contrastive.margin", "less"),
        (
            {"training": {"contrastive": {"positive_fraction": 1.0}}},
            "training.contrastive.positive_fraction",
            "less than 1",
        ),
        ({"training": {"contrastive": {"batch_size": 1}}}, "training.contrastive.batch_size", "1"),
        ({"training": {"contrastive": {"tau": 0.05}}}, "training.contrastive.tau", "Extra inputs"),
        ({"adapter": {"method": "qlora"}}, "adapter.method", "'lora' or 'full'"),
        ({"adapter": {"method": "full"}}, "adapter", "LoRA settings r, alpha, dropout are not"),
    ],
)
def test_bad_recipe_names_file_and_field(root, overrides, field, fragment):
    path = write_recipe(root, overrides)
    with pytest.raises(InputError) as info:
        load_recipe(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {field}: "), message
    assert fragment in message


def test_recipe_name_must_match_file(root):
    path = write_recipe(root)
    other = path.with_name("other.yaml")
    path.rename(other)
    with pytest.raises(InputError, match=r"other\.yaml: name: 'demo' must match"):
        load_recipe(other)


def test_missing_taxonomy_file_is_named(root):
    path = write_recipe(root, {"taxonomy": "../taxonomies/demo/v9.yaml"})
    with pytest.raises(
        InputError, match=r"demo\.yaml: taxonomy: taxonomy file .*v9\.yaml not found"
    ):
        load_recipe(path)


def test_invalid_yaml_names_line(root):
    path = root / "recipes" / "demo.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text("name: demo\ntraining: [unclosed\n")
    with pytest.raises(InputError, match=r"demo\.yaml: line \d+: invalid YAML"):
        load_recipe(path)


def test_load_recipes_fails_on_first_bad_file(root):
    write_recipe(root)
    bad = merge(BASE_RECIPE, {"name": "broken", "training": {"learning_rate": 0}})
    (root / "recipes" / "broken.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(InputError, match=r"broken\.yaml: training\.learning_rate"):
        load_recipes(root / "recipes")


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"name": "demo", "version": "v1", "labels": [{"name": "a"}, {"name": "a"}]}, "labels"),
        (
            {"name": "demo", "version": "v1", "labels": [{"name": "A b"}, {"name": "c"}]},
            "labels[0].name",
        ),
        ({"name": "demo", "version": "one", "labels": [{"name": "a"}, {"name": "b"}]}, "version"),
        ({"name": "demo", "version": "v1", "labels": [{"name": "a"}]}, "labels"),
        (
            {
                "name": "demo",
                "version": "v1",
                "labels": [{"name": "a", "colour": 1}, {"name": "b"}],
            },
            "labels[0].colour",
        ),
    ],
)
def test_bad_taxonomy_names_file_and_field(tmp_path, doc, field):
    path = tmp_path / "v1.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(InputError) as info:
        load_taxonomy(path)
    assert str(info.value).startswith(f"{path}: {field}: "), str(info.value)


def test_taxonomy_version_must_match_file_name(tmp_path):
    path = tmp_path / "v2.yaml"
    path.write_text(
        yaml.safe_dump({"name": "d", "version": "v1", "labels": [{"name": "a"}, {"name": "b"}]})
    )
    with pytest.raises(InputError, match=r"v2\.yaml: version: 'v1' does not match"):
        load_taxonomy(path)


def test_bad_taxonomy_fails_the_recipe_load(root):
    (root / "taxonomies" / "demo" / "v1.yaml").write_text("name: demo\nversion: v1\nlabels: 3\n")
    with pytest.raises(InputError, match=r"v1\.yaml: labels: "):
        load_recipe(write_recipe(root))
