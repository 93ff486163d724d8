"""One forward pass: the training-time classifier, the shared base (one adapter merged,
then two with the adapter swapped per pass) and the predictor give the same
probabilities, and each gives exactly what its own former code gave (the former code is
kept here as the reference)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from modelops.config.recipe import Recipe
from modelops.domain.text import clean_text
from modelops.lifecycle.fetch import FetchedAdapter
from modelops.lifecycle.platform import Platform
from modelops.ml.model import load_classifier, pool, predict_proba, run_batches, tokenize
from modelops.serving.model_pool import ModelPool
from modelops.serving.predictor import Predictor

TEXTS = [clean_text(t) for t in (
    "I lost my card yesterday", "please refund my order", "where is my parcel",
    "change my address please", "I was charged twice and nobody answers my emails", "hi",
)]  # fmt: skip


def former_shared_base(models: ModelPool, adapter, texts) -> np.ndarray:
    """The shared base's forward as ``SharedBase.logits`` wrote it out before it called
    the classifier: encoder, pooling, normalization, head; then the softmax."""
    base = models._bases[adapter.base_sha256]
    encoded = tokenize(base.tokenizer, texts, adapter.max_length)
    classifier = adapter.classifier
    with base.lock:
        if not base.merged:
            base.model.set_adapter(adapter.name)

        def forward(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            hidden = base.model(input_ids=ids, attention_mask=mask).last_hidden_state
            pooled = pool(hidden, mask, classifier.pooling)
            if classifier.normalize:
                pooled = nn.functional.normalize(pooled, dim=-1)
            return classifier.head(pooled)

        logits = run_batches(forward, encoded, base.tokenizer.pad_token_id, models.batch_size)
    return torch.softmax(torch.from_numpy(logits), dim=-1).numpy()


def former_ranking(probs: np.ndarray, labels: list[str], k: int) -> list[tuple]:
    """``Predictor.score``'s top-k before it used ``serving.ranking.ranked``."""
    order = np.argsort(-probs, axis=1, kind="stable")[:, : min(k, len(labels))]
    return [
        (labels[best[0]], float(row[best[0]]), [{"label": labels[i], "p": float(row[i])}
                                                for i in best])
        for row, best in zip(probs, order, strict=True)
    ]  # fmt: skip


def test_training_model_shared_base_and_predictor_give_the_same_probabilities(
    shared_workspace,
):
    settings, champion, candidate, _ = shared_workspace
    platform = Platform.from_settings(settings)
    try:
        versions = {i: platform.registry.get(i) for i in (champion, candidate)}
        # the training-time classifier, each adapter on its own copy of the base
        alone, labels = {}, {}
        for i, version in versions.items():
            with FetchedAdapter(platform, version) as fetched:
                base = platform.resolve_base_by_sha256(fetched.manifest["base_model"]["sha256"])
                tokenizer, model, labels[i] = load_classifier(fetched.path, base.path)
                recipe = Recipe.model_validate(fetched.manifest["recipe_snapshot"]["recipe"])
            alone[i] = predict_proba(tokenizer, model, TEXTS, max_length=recipe.training.max_length)

        models = ModelPool(platform, batch_size=4)
        first = models.load(versions[champion])
        merged = models.probabilities(first, TEXTS)  # the only adapter: merged into the base
        assert np.array_equal(merged, former_shared_base(models, first, TEXTS))
        second = models.load(versions[candidate])  # two adapters: swapped per pass
        for adapter in (first, second, first):
            probs = models.probabilities(adapter, TEXTS)
            assert np.array_equal(probs, former_shared_base(models, adapter, TEXTS))
            assert adapter.labels == labels[adapter.id]
            np.testing.assert_allclose(probs, alone[adapter.id], rtol=0, atol=1e-6)
            assert (probs.argmax(1) == alone[adapter.id].argmax(1)).all()
        np.testing.assert_allclose(merged, alone[champion], rtol=0, atol=1e-6)
        assert not np.allclose(alone[champion], alone[candidate], atol=1e-3)  # told apart

        # the predictor (recipe demo's serving adapter: the champion) loads it the way
        # the training-time classifier does: exactly its probabilities, ranked as before
        predictor = Predictor(platform, "demo", log=None, top_k=3)
        got = [(p.label, p.confidence, p.top_k) for p in predictor.score(TEXTS)]
        assert got == former_ranking(alone[champion], labels[champion], 3)
    finally:
        platform.registry.close()


def test_one_ranking_most_probable_first_ties_in_label_order():
    from modelops.serving.ranking import ranked

    probs = np.array([[0.2, 0.5, 0.3], [0.4, 0.2, 0.4]], dtype=np.float32)
    assert ranked(probs, ["a", "b", "c"], 2) == [
        [{"label": "b", "p": 0.5}, {"label": "c", "p": pytest.approx(0.3)}],
        [{"label": "a", "p": pytest.approx(0.4)}, {"label": "c", "p": pytest.approx(0.4)}],
    ]
    assert [len(top) for top in ranked(probs, ["a", "b", "c"], 10)] == [3, 3]
    assert former_ranking(probs, ["a", "b", "c"], 2) == [
        (top[0]["label"], top[0]["p"], top) for top in ranked(probs, ["a", "b", "c"], 2)
    ]
