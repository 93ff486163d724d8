"""Integration with the packaged all-MiniLM-L6-v2 on a small sample of demo data."""

from __future__ import annotations

import numpy as np
import pytest
from transformers import AutoModel, AutoTokenizer

from modelops.lifecycle.dataset import build_dataset
from modelops.lifecycle.evaluate import evaluate_adapter
from modelops.lifecycle.platform import Platform
from modelops.lifecycle.train import train_adapter
from modelops.ml.catalog import Catalog
from modelops.ml.model import PooledClassifier, embed_texts
from modelops_tests.fixtures.workspace import make_workspace

pytestmark = pytest.mark.minilm


@pytest.fixture(scope="module")
def minilm():
    return Catalog.load(None).resolve("minilm@stable")


def test_default_catalog_is_the_packaged_minilm(minilm):
    assert minilm.entry.ref == "minilm@all-MiniLM-L6-v2"
    assert minilm.entry.pooling == "mean"
    assert len(minilm.sha256) == 64
    assert (minilm.path / "model.safetensors").is_file()


def test_mean_pooled_embeddings_are_sentence_embeddings(minilm):
    tokenizer = AutoTokenizer.from_pretrained(str(minilm.path))
    model = PooledClassifier(AutoModel.from_pretrained(str(minilm.path)), 2, "mean")
    texts = ["I lost my card yesterday", "My card was stolen", "How do I reset my password"]
    emb = embed_texts(tokenizer, model, texts, max_length=64)
    assert emb.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    sims = emb @ emb.T
    assert sims[0, 1] > sims[0, 2] + 0.1  # lost vs stolen card closer than password


def test_minilm_adapter_trains_and_beats_chance(tmp_path, tiny_catalog):
    settings = make_workspace(
        tmp_path,
        tiny_catalog,
        rows=420,
        recipe={
            "base_model": "minilm@stable",
            "adapter": {"r": 4, "target_modules": ["query", "value"]},
            "training": {"epochs": 1, "learning_rate": 0.0005, "max_length": 32},
        },
    )
    settings = type(settings)(**{**settings.__dict__, "catalog_path": tmp_path / "absent.yaml"})
    platform = Platform.from_settings(settings)
    from modelops.config.recipe import load_recipe

    loaded = load_recipe(settings.recipes_dir / "demo.yaml")
    dataset = build_dataset(platform, loaded, emit=lambda _m: None)
    version = train_adapter(platform, loaded, dataset, emit=lambda _m: None)
    assert version.base_model == "minilm@all-MiniLM-L6-v2"
    outcome = evaluate_adapter(platform, version.id, emit=lambda _m: None)
    chance = 1 / len(dataset.labels)
    assert outcome.baseline.accuracy > 4 * chance
    assert outcome.candidate.accuracy > 4 * chance
