"""Moving a recipe's base: adapters keep their own base (reproduce, loading), a warm start
does not cross bases, a recipe moves to MPNet unchanged but for ``base_model``, and
``base adapt`` derives a registered base from a recipe's texts."""

from __future__ import annotations

import json
from dataclasses import replace

import boto3
import pytest

from modelops.config.errors import InputError, IntegrityError
from modelops.config.fingerprint import sha256_dir
from modelops.config.recipe import load_recipe
from modelops.lifecycle.base_adapt import adapt_base
from modelops.lifecycle.catalog import alias_base, list_bases
from modelops.lifecycle.dataset import build_dataset
from modelops.lifecycle.fetch import FetchedAdapter, predict_with
from modelops.lifecycle.platform import Platform
from modelops.lifecycle.reproduce import reproduce
from modelops.lifecycle.train import train_adapter
from modelops.ml.catalog import Catalog
from modelops.ml.mlm import MlmSettings
from modelops.ml.model import load_base, load_classifier
from modelops.stores.production_log import PredictionRecord
from modelops_tests.fixtures.tiny_bases import shared_tiny_bases, write_bases_catalog
from modelops_tests.fixtures.workspace import make_workspace, write_recipe

QUIET = lambda _m: None  # noqa: E731
FAST = {"training": {"epochs": 1}}


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    return shared_tiny_bases(tmp_path_factory)


@pytest.fixture
def platform(bases, tmp_path):
    catalog = write_bases_catalog(tmp_path / "catalog.yaml", bases)
    settings = make_workspace(tmp_path, catalog, rows=240, recipe=FAST)
    platform = Platform.from_settings(settings)
    yield platform
    platform.registry.close()


def train(platform, name="demo"):
    loaded = load_recipe(platform.settings.recipes_dir / f"{name}.yaml")
    dataset = build_dataset(platform, loaded, emit=QUIET)
    return loaded, dataset


def test_old_base_adapter_survives_the_alias_move(platform, bases):
    loaded, dataset = train(platform)
    old = train_adapter(platform, loaded, dataset, emit=QUIET)
    a_sha = sha256_dir(bases["bert_a"].path)
    assert old.base_model == "tiny@a" and old.base_model_sha256 == a_sha
    assert old.lineage["base_model"] | {"sha256": "-"} == {
        "ref": "tiny@a",
        "sha256": "-",
        "architecture": "bert",
        "hidden_size": 32,
        "num_layers": 2,
        "vocab_size": bases["bert_a"].vocab_size,
        "pooling": "mean",
        "tokenizer_sha256": old.lineage["base_model"]["tokenizer_sha256"],
    }
    moved = alias_base(platform, "tiny@stable", "b")
    assert moved == {"alias": "tiny@stable", "from": "tiny@a", "to": "tiny@b", "recipes": ["demo"]}
    fresh = Platform.from_settings(platform.settings)  # reads the changed catalog file
    try:
        assert fresh.resolve_base("tiny@stable").entry.ref == "tiny@b"
        report = reproduce(fresh, old.id, emit=QUIET)
        assert report["identical"] and report["base_model_sha256"] == a_sha
        with FetchedAdapter(fresh, old) as fetched:  # scoring loads it onto tiny@a still
            probs, labels = predict_with(fresh, fetched, ["my card is lost"], 32)
            assert probs.shape == (1, len(labels))
            with pytest.raises(
                IntegrityError,
                match=r"trained on base tiny@a .*refusing to "
                r"load it onto .*bert_b.*sha256 differ",
            ):
                load_classifier(fetched.path, bases["bert_b"].path)
        # an incremental run does not warm-start across bases: it trains in full on tiny@b
        new = train_adapter(fresh, loaded, dataset, emit=QUIET, mode="incremental")
        assert new.id != old.id and new.base_model == "tiny@b"
        assert new.lineage["mode"] == "full" and new.lineage["warm_start"] is None
        listed = list_bases(fresh)
        assert {r["ref"]: r["recipes"] for r in listed["revisions"]}["tiny@b"] == [
            "demo (tiny@stable)"
        ]
    finally:
        fresh.registry.close()


def test_recipe_moves_to_mpnet_with_only_its_base_line_changed(platform, bases):
    write_recipe(
        platform.settings.home.parent, {**FAST, "name": "onmpnet", "base_model": "tinympnet@stable"}
    )
    loaded, dataset = train(platform, "onmpnet")
    assert list(loaded.recipe.adapter.target_modules) == ["query", "value"]
    version = train_adapter(platform, loaded, dataset, emit=QUIET)
    assert version.lineage["base_model"]["architecture"] == "mpnet"
    with FetchedAdapter(platform, version) as fetched:
        config = json.loads((fetched.path / "adapter_config.json").read_text())
        assert set(config["target_modules"]) == {"q", "v"}
        probs, labels = predict_with(platform, fetched, ["refund my order please"], 32)
        assert probs.shape == (1, len(labels))
    assert reproduce(platform, version.id, emit=QUIET)["identical"]


def test_base_adapt_registers_a_derived_base(platform, bases):
    loaded, _ = train(platform)
    texts = ["where is my parcel", "my card was stolen yesterday", "refund the double charge"]
    platform.production_log.log_predictions(
        [
            PredictionRecord.for_text(
                t,
                recipe="demo",
                taxonomy_version="v1",
                adapter_id=1,
                predicted_label="x",
                confidence=0.5,
                top_k=[],
                source="api",
            )
            for t in texts * 3
        ]
    )
    settings = MlmSettings(steps=8, batch_size=16, max_length=32)
    lines = []
    out = adapt_base(platform, loaded, settings, emit=lines.append)
    entry = out["entry"]
    assert out["created"] and entry.name == "tiny"
    assert entry.revision.startswith("a-dapt-demo-")
    assert entry.location.startswith("artifact:") and entry.sha256
    assert entry.lineage["parent"] == {"ref": "tiny@a", "sha256": sha256_dir(bases["bert_a"].path)}
    texts_stats = entry.lineage["texts"]
    assert texts_stats["data_texts"] > 100 and texts_stats["data_test_excluded"] > 0
    assert texts_stats["production_texts"] + texts_stats["production_test_excluded"] == 9
    assert entry.lineage["steps"] == 8 and entry.lineage["seed"] == 13
    assert (entry.hidden_size, entry.num_layers, entry.architecture) == (32, 2, "bert")
    assert any("masked-LM step 8/8" in line and "ETA" in line for line in lines)
    # registered in the file, loads back out of the artifact store, verified
    catalog = Catalog.load(platform.settings.catalog_path)
    fresh = Platform(
        settings=platform.settings,
        registry=platform.registry,
        store=platform.store,
        catalog=catalog,
    )
    resolved = fresh.resolve_base(entry.ref)
    assert resolved.sha256 == entry.sha256 != sha256_dir(bases["bert_a"].path)
    assert resolved.path.is_relative_to(platform.settings.cache_dir)
    tokenizer, encoder = load_base(resolved.path)
    assert encoder.config.hidden_size == 32 and len(tokenizer) == bases["bert_a"].vocab_size
    again = adapt_base(fresh, loaded, settings, emit=QUIET)  # same parent, texts, settings
    assert not again["created"] and again["entry"].ref == entry.ref
    with pytest.raises(InputError, match="steps: must be > 0"):
        adapt_base(fresh, loaded, MlmSettings(steps=0), emit=QUIET)


def test_base_adapt_refuses_too_few_texts(bases, tmp_path):
    catalog = write_bases_catalog(tmp_path / "catalog.yaml", bases)
    settings = make_workspace(tmp_path, catalog, rows=30, recipe=FAST)
    platform = Platform.from_settings(settings)
    try:
        loaded = load_recipe(settings.recipes_dir / "demo.yaml")
        with pytest.raises(
            InputError,
            match=r"texts: \d+ distinct non-empty texts; domain "
            "adaptation needs at least 32",
        ):
            adapt_base(platform, loaded, MlmSettings(steps=2), max_production=0, emit=QUIET)
        assert len(Catalog.load(catalog).entries) == len(bases)  # nothing registered
    finally:
        platform.registry.close()


def test_base_adapt_into_an_s3_artifact_store(bases, tmp_path, s3_bucket):
    """The production path: the adapted base goes to S3 (moto), the catalog records an
    artifact: location there, and a platform with an empty cache resolves it from S3."""
    endpoint, bucket = s3_bucket
    catalog = write_bases_catalog(tmp_path / "catalog.yaml", bases)
    settings = make_workspace(
        tmp_path,
        catalog,
        rows=240,
        recipe=FAST,
        artifacts_uri=f"s3://{bucket}/artifacts",
        s3_endpoint_url=endpoint,
    )
    platform = Platform.from_settings(settings)
    try:
        loaded = load_recipe(settings.recipes_dir / "demo.yaml")
        entry = adapt_base(
            platform,
            loaded,
            MlmSettings(steps=4, batch_size=16, max_length=32),
            max_production=0,
            emit=QUIET,
        )["entry"]
        assert entry.location.startswith(f"artifact:s3://{bucket}/artifacts/base_models/tiny/")
        keys = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").list_objects_v2(
            Bucket=bucket, Prefix="artifacts/base_models/"
        )["Contents"]
        assert any(k["Key"].endswith("model.safetensors") for k in keys)
        fresh_settings = replace(settings, cache_dir=tmp_path / "fresh-cache")
        fresh = Platform(
            settings=fresh_settings,
            registry=platform.registry,
            store=platform.store,
            catalog=Catalog.load(catalog),
        )
        resolved = fresh.resolve_base(entry.ref)
        assert resolved.sha256 == entry.sha256
        assert resolved.path.is_relative_to(tmp_path / "fresh-cache")
        tokenizer, encoder = load_base(resolved.path)
        assert encoder.config.hidden_size == 32 and len(tokenizer) == bases["bert_a"].vocab_size
    finally:
        platform.registry.close()
