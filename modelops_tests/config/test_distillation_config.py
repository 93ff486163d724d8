"""The recipe's ``distillation:`` section: what a folder of recipes must satisfy (teacher
exists, same taxonomy, no self-teacher, no cycle), errors naming the file and field, and
what the recipe fingerprint makes of it."""

from __future__ import annotations

import pytest
import yaml

from modelops.config.errors import InputError
from modelops.config.recipe import load_recipe, load_recipes
from modelops.config.recipe_folder import RecipeFolder
from modelops_tests.fixtures.workspace import write_recipe

TEACH = {"distillation": {"teacher": "teacher"}}


@pytest.fixture
def root(tmp_path):
    for version in ("v1", "v2"):
        tax = tmp_path / "taxonomies" / "demo" / f"{version}.yaml"
        tax.parent.mkdir(parents=True, exist_ok=True)
        labels = [{"name": "a"}, {"name": "b"}, {"name": "c"}]
        tax.write_text(yaml.safe_dump({"name": "demo", "version": version, "labels": labels}))
    return tmp_path


def test_a_student_and_its_teacher_load(root):
    write_recipe(root, {"name": "teacher"})
    write_recipe(root, TEACH)
    recipes = {r.name: r for r in load_recipes(root / "recipes")}
    section = recipes["demo"].recipe.distillation
    assert section.teacher == "teacher"
    assert 0 < section.alpha < 1 and section.temperature > 0
    assert section.production_texts.max_rows == 0
    assert recipes["teacher"].recipe.distillation is None
    assert [r.name for r in RecipeFolder(root / "recipes").load()] == ["demo", "teacher"]


def test_self_teacher_is_refused_naming_the_field(root):
    with pytest.raises(InputError) as err:
        load_recipe(write_recipe(root, {"distillation": {"teacher": "demo"}}))
    assert err.value.where == "distillation.teacher"
    assert "own teacher" in str(err.value)


@pytest.mark.parametrize("reader", ["load_recipes", "folder"])
def test_missing_teacher_is_refused(root, reader):
    path = write_recipe(root, TEACH)
    with pytest.raises(InputError) as err:
        if reader == "folder":
            RecipeFolder(root / "recipes").load()
        else:
            load_recipes(root / "recipes")
    assert err.value.source == str(path)
    assert err.value.where == "distillation.teacher"
    assert "'teacher'" in str(err.value)


def test_teacher_of_another_taxonomy_version_is_refused(root):
    write_recipe(root, {"name": "teacher", "taxonomy": "../taxonomies/demo/v2.yaml"})
    write_recipe(root, TEACH)
    with pytest.raises(InputError) as err:
        load_recipes(root / "recipes")
    assert err.value.where == "distillation.teacher"
    assert "demo:v2" in str(err.value) and "demo:v1" in str(err.value)


def test_a_cycle_of_teachers_is_refused(root):
    write_recipe(root, {"name": "teacher", "distillation": {"teacher": "third"}})
    write_recipe(root, {"name": "third", "distillation": {"teacher": "demo"}})
    write_recipe(root, TEACH)
    with pytest.raises(InputError) as err:
        load_recipes(root / "recipes")
    assert "cycle" in str(err.value)
    assert "demo -> teacher -> third -> demo" in str(err.value)


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"teacher": "teacher", "alpha": 1.5}, "distillation.alpha"),
        ({"teacher": "teacher", "temperature": 0}, "distillation.temperature"),
        ({"teacher": "Not A Name"}, "distillation.teacher"),
        ({"teacher": "teacher", "extra": 1}, "distillation.extra"),
        ({"teacher": "teacher", "production_texts": {"max_rows": -1}}, "max_rows"),
    ],
)
def test_bad_fields_are_named(root, section, field):
    with pytest.raises(InputError) as err:
        load_recipe(write_recipe(root, {"distillation": section}))
    assert field in str(err.value)


def test_production_texts_need_a_soft_label_term(root):
    section = {"teacher": "teacher", "alpha": 0.0, "production_texts": {"max_rows": 10}}
    with pytest.raises(InputError) as err:
        load_recipe(write_recipe(root, {"distillation": section}))
    assert "alpha > 0" in str(err.value)


def test_fingerprint_follows_the_distillation_settings(root):
    plain = load_recipe(write_recipe(root)).fingerprint()
    taught = load_recipe(write_recipe(root, TEACH)).fingerprint()
    hotter = {"distillation": {"teacher": "teacher", "temperature": 4.0}}
    other = {"distillation": {"teacher": "other"}}
    assert len({plain, taught}) == 2
    assert load_recipe(write_recipe(root, hotter)).fingerprint() not in (plain, taught)
    assert load_recipe(write_recipe(root, other)).fingerprint() not in (plain, taught)
    # the pause setting of the sensor is not part of what trains the weights
    paused = {**TEACH, "retraining": {"on_teacher_change": False}}
    assert load_recipe(write_recipe(root, paused)).fingerprint() == taught
