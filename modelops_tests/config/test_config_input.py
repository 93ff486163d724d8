"""Bad recipes, taxonomies and catalog entries (fuzzed with hypothesis): a clear error
naming the file (and field), or a valid result; and no recipe path leaves its workspace."""

from __future__ import annotations

import copy

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelops.config.errors import InputError
from modelops.config.recipe import load_recipe
from modelops.config.taxonomy import load_taxonomy
from modelops.demo.files import taxonomy_document
from modelops.ml.catalog import Catalog
from modelops_tests.fixtures.workspace import BASE_RECIPE, write_recipe

FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.sampled_from(["\0", "../../../etc/passwd", "x" * 5000, "é\u2028"]),
)
VALUE = st.recursive(
    SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def paths(doc, prefix=()):
    """Every key path of a nested mapping."""
    for key, value in doc.items():
        yield (*prefix, key)
        if isinstance(value, dict):
            yield from paths(value, (*prefix, key))


def mutate(doc: dict, path: tuple, value, delete: bool) -> dict:
    out = copy.deepcopy(doc)
    parent = out
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return out


@pytest.fixture
def workspace(tmp_path):
    tax = tmp_path / "taxonomies" / "demo" / "v1.yaml"
    tax.parent.mkdir(parents=True)
    tax.write_text(yaml.safe_dump(taxonomy_document("demo", "v1")))
    return tmp_path


def expect_clear(call, path):
    try:
        return call()
    except InputError as exc:
        assert exc.source is not None, str(exc)
        assert str(exc).startswith(exc.source)
        return None


@FUZZ
@given(data=st.data())
def test_fuzz_recipes(workspace, data):
    fields = sorted(paths(BASE_RECIPE))
    path = data.draw(st.sampled_from(fields))
    doc = mutate(BASE_RECIPE, path, data.draw(VALUE), data.draw(st.booleans()))
    file = workspace / "recipes" / "demo.yaml"
    file.parent.mkdir(exist_ok=True)
    try:
        file.write_text(yaml.safe_dump(doc), encoding="utf-8")
    except UnicodeEncodeError:  # a lone surrogate: not a file anyone can write
        return
    loaded = expect_clear(lambda: load_recipe(file), file)
    if loaded is not None:
        assert loaded.name == "demo"


@FUZZ
@given(raw=st.binary(max_size=200))
def test_fuzz_recipe_bytes(workspace, raw):
    file = workspace / "recipes" / "demo.yaml"
    file.parent.mkdir(exist_ok=True)
    file.write_bytes(raw)
    with pytest.raises(InputError) as info:
        load_recipe(file)
    assert info.value.source == str(file)


@FUZZ
@given(data=st.data())
def test_fuzz_taxonomies(workspace, data):
    base = taxonomy_document("demo", "v1")
    base["labels"] = base["labels"][:3]
    choice = data.draw(st.sampled_from(["labels", "name", "version", "label", "duplicate"]))
    doc = copy.deepcopy(base)
    if choice == "label":
        doc["labels"][0] = {"name": data.draw(VALUE)}
    elif choice == "duplicate":
        doc["labels"].append(copy.deepcopy(doc["labels"][0]))
    else:
        doc[choice] = data.draw(VALUE)
    file = workspace / "taxonomies" / "demo" / "v1.yaml"
    try:
        file.write_text(yaml.safe_dump(doc), encoding="utf-8")
    except UnicodeEncodeError:
        return
    taxonomy = expect_clear(lambda: load_taxonomy(file), file)
    if taxonomy is not None:
        names = taxonomy.label_names
        assert len(names) == len(set(names)) and choice != "duplicate"


@FUZZ
@given(
    entry=st.dictionaries(
        st.sampled_from(
            [
                "name",
                "revision",
                "aliases",
                "location",
                "architecture",
                "pooling",
                "sha256",
                "extra",
            ]
        ),
        VALUE,
        max_size=6,
    )
)
def test_fuzz_catalog_entries(tmp_path, entry):
    file = tmp_path / "catalog.yaml"
    try:
        file.write_text(yaml.safe_dump({"models": [entry]}), encoding="utf-8")
    except UnicodeEncodeError:
        return
    catalog = expect_clear(lambda: Catalog.load(file), file)
    if catalog is not None:
        (only,) = catalog.entries
        assert only.location and only.name


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"data": {"sources": [{"path": "../../../etc/passwd"}]}}, "data.sources[0].path"),
        ({"taxonomy": "../../outside/v1.yaml"}, "taxonomy"),
        ({"monitoring": {"landing": "../../landing"}}, "monitoring.landing"),
    ],
)
def test_a_relative_path_leaving_the_workspace_is_refused(workspace, change, where):
    file = write_recipe(workspace, change)
    with pytest.raises(InputError, match="leads outside the workspace") as info:
        load_recipe(file)
    assert info.value.where == where and info.value.source == str(file)
