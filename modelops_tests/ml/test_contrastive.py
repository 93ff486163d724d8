"""The contrastive stage (``training.contrastive``) with the tiny random BERT: pairs drawn
from the labels, the loss, embeddings of a label pulled together, determinism, and the
stage inside a training (LoRA and full)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modelops.config.recipe import AdapterSettings, ContrastiveSettings
from modelops.domain.dataset import encode_labels
from modelops.ml.adapter_methods import with_adapter
from modelops.ml.contrastive import ContrastiveJob, pair_loss, run_contrastive, sample_pairs
from modelops.ml.model import PooledClassifier, load_base, run_batches, tokenize
from modelops.ml.training import deterministic
from modelops_tests.fixtures.training_setup import tiny_training, train_quietly


@pytest.fixture(scope="module")
def setup(tiny_catalog, tmp_path_factory):
    return tiny_training(tmp_path_factory.mktemp("contrastive"), tiny_catalog)


def test_pairs_come_from_the_labels():
    labels = np.array([0, 1, 0, 2, 1, 0, 1, 3, 0])  # label 3 has a single row
    pairs = sample_pairs(labels, 4, 0.5, np.random.default_rng(1))
    a, b, same = pairs.T
    assert np.array_equal(labels[a] == labels[b], same.astype(bool))
    assert not np.any(a == b)
    positives = np.bincount(a[same == 1], minlength=len(labels))
    negatives = np.bincount(a[same == 0], minlength=len(labels))
    assert list(negatives) == [2] * len(labels)
    assert list(positives) == [0 if lab == 3 or lab == 2 else 2 for lab in labels]
    again = sample_pairs(labels, 4, 0.5, np.random.default_rng(1))
    assert np.array_equal(pairs, again)
    one_label = sample_pairs(np.zeros(5, dtype=int), 3, 0.34, np.random.default_rng(0))
    assert len(one_label) == 5 and one_label[:, 2].all()  # no other label: no negatives


def test_pair_loss_pulls_positives_and_pushes_negatives_past_the_margin():
    e = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [-1.0, 0.2]])
    cos01 = 1 / np.sqrt(2)
    pairs = torch.tensor([[0, 1, 1], [0, 1, 0], [0, 2, 0], [0, 3, 0]])
    expected = [(1 - cos01) ** 2, cos01**2, 0.0, 0.0]
    assert float(pair_loss(e, pairs, 0.0)) == pytest.approx(np.mean(expected), rel=1e-6)
    # margin 0.8: the negative pair at cosine 0.707 no longer costs anything
    expected[1] = 0.0
    assert float(pair_loss(e, pairs, 0.8)) == pytest.approx(np.mean(expected), rel=1e-6)


def label_separation(model, tokenizer, ids: list, y: np.ndarray) -> float:
    """Mean cosine of same-label pairs minus that of different-label pairs."""
    model.eval()
    emb = run_batches(model.embed, ids, tokenizer.pad_token_id, 64)
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sims = emb @ emb.T
    same = y[:, None] == y[None, :]
    off = ~np.eye(len(y), dtype=bool)
    return float(sims[same & off].mean() - sims[~same].mean())


@pytest.mark.parametrize("method", ["lora", "full"])
def test_stage_moves_same_label_embeddings_closer(setup, method):
    loaded, base, dataset = setup
    adapter = loaded.recipe.adapter if method == "lora" else AdapterSettings(method="full")
    stage = ContrastiveSettings(pairs_per_row=4, epochs=2, learning_rate=0.01)
    settings = loaded.recipe.training.model_copy(update={"contrastive": stage})
    train = dataset.split("train")
    y = encode_labels(train, dataset.labels)
    with deterministic(settings.seed, 1):
        tokenizer, encoder = load_base(base.path)
        model = with_adapter(PooledClassifier(encoder, len(dataset.labels), "mean"), adapter)
        ids = tokenize(tokenizer, train["text"].tolist(), 32)
        before = label_separation(model, tokenizer, ids, y)
        messages: list[str] = []
        summary = run_contrastive(
            ContrastiveJob(model, ids, y, tokenizer.pad_token_id, settings), messages.append
        )
        after = label_separation(model, tokenizer, ids, y)
    assert after > before
    assert summary["epoch_losses"][-1] < summary["epoch_losses"][0]
    assert summary["pairs"] == 4 * len(train)
    assert messages[0].startswith("contrastive stage: ") and "done" in messages[-1]


def test_training_with_the_stage_is_deterministic_and_recorded(setup, tmp_path):
    loaded, base, dataset = setup
    stage = {"pairs_per_row": 2, "epochs": 1, "learning_rate": 0.01}

    def run(out, training):
        recipe = loaded.recipe.model_copy(
            update={"training": loaded.recipe.training.model_copy(update=training)}
        )
        return train_quietly(recipe, base, dataset, out)

    with_stage = {"contrastive": ContrastiveSettings(**stage), "epochs": 1}
    first = run(tmp_path / "a", with_stage)
    second = run(tmp_path / "b", with_stage)
    plain = run(tmp_path / "c", {"epochs": 1})
    assert first.weights_sha256 == second.weights_sha256 != plain.weights_sha256
    assert first.contrastive["pairs"] == 2 * dataset.stats["train_rows"]
    assert 0 <= first.contrastive["probe_validation_accuracy"] <= 1
    assert plain.contrastive is None
    # the stage moved the LoRA weights even when the starting point is kept
    assert first.lora_nonzero
    # the baseline stays the probe on the frozen base
    assert first.baseline["test"]["predictions"] == plain.baseline["test"]["predictions"]
