"""A training run loads its base once: the drift reference and the scores the evaluation
reads are taken from the model as trained, and the champion is scored beside it on the
same base. What they hold equals what loading the models again gives."""

from __future__ import annotations

import numpy as np
import pytest

from modelops.config.recipe import load_recipe
from modelops.domain.dataset import encode_labels
from modelops.domain.evaluation import evaluate
from modelops.lifecycle.candidate_scores import read_scores
from modelops.lifecycle.cost import timed_predict
from modelops.lifecycle.dataset import build_dataset, load_dataset
from modelops.lifecycle.evaluate import evaluate_adapter
from modelops.lifecycle.fetch import FetchedAdapter, load_adapter
from modelops.lifecycle.platform import Platform
from modelops.lifecycle.promote import promote_if_passed
from modelops.lifecycle.train import train_adapter
from modelops.ml.model import BASE_LOADS
from modelops.monitoring.reference import base_embeddings, load_bundle
from modelops_tests.fixtures.workspace import LENIENT, make_workspace, write_recipe

QUIET = lambda _m: None  # noqa: E731
# A drift reference even from the tiny workspace's held-out rows.
RECIPE = {**LENIENT, "monitoring": {"window_size": 20, "n_bootstrap": 50}}


@pytest.fixture(scope="module")
def workspace(tiny_catalog, tmp_path_factory):
    root = tmp_path_factory.mktemp("loads")
    settings = make_workspace(root, tiny_catalog, rows=360, recipe=RECIPE)
    platform = Platform.from_settings(settings)
    yield root, settings, platform
    platform.registry.close()


def train_and_evaluate(settings, platform, mode="full"):
    """One training run as the pipeline runs it; the adapter, the outcome and the number
    of base loads it took."""
    loaded = load_recipe(settings.recipes_dir / "demo.yaml")
    dataset = build_dataset(platform, loaded, emit=QUIET)
    before = BASE_LOADS["count"]
    adapter = train_adapter(platform, loaded, dataset, emit=QUIET, mode=mode)
    outcome = evaluate_adapter(platform, adapter.id, emit=QUIET, loaded=loaded)
    return adapter, outcome, BASE_LOADS["count"] - before


def test_one_base_load_per_training_run(workspace):
    root, settings, platform = workspace
    first, outcome, loads = train_and_evaluate(settings, platform)
    assert loads == 1  # training; the reference and the evaluation reuse the trained model
    assert outcome.champion_id is None
    promote_if_passed(platform, first.id, who="tester", why="first")

    # Incremental: the warm start is the one load (the base under the champion's adapter);
    # the champion the evaluation compares with is scored beside the candidate.
    second, outcome, loads = train_and_evaluate(settings, platform, mode="incremental")
    assert second.lineage["mode"] == "incremental"
    assert second.lineage["warm_start"]["adapter_id"] == first.id
    assert loads == 1
    assert outcome.champion_id == first.id and outcome.champion is not None
    assert_stored_scores_are_a_fresh_loads(platform, second, first, outcome)
    # the cost gate weighed the inference cost measured there too, loading nothing more
    (cost,) = [c for c in outcome.decision.checks if c.name == "gain_worth_cost"]
    assert cost.metadata["measured"].startswith("timed by the training step")
    assert cost.metadata["memory_ratio"] == 1.0  # one base in memory, both adapters on it

    # A full retraining with a champion in place: one load too.
    write_recipe(root, {**RECIPE, "training": {"seed": 8}})
    third, outcome, loads = train_and_evaluate(settings, platform)
    assert third.lineage["mode"] == "full" and loads == 1
    assert outcome.champion_id == first.id and outcome.champion is not None
    assert_stored_scores_are_a_fresh_loads(platform, third, first, outcome)
    assert_reference_is_a_fresh_loads(platform, third)


def assert_stored_scores_are_a_fresh_loads(platform, adapter, champion, outcome):
    """The scores the training stored are, bit for bit, those of the models loaded again,
    and so is the evaluation built on them."""
    with FetchedAdapter(platform, adapter) as fetched:
        max_length = outcome_max_length(fetched)
        test = load_dataset(platform, fetched.manifest["dataset"]).split("test")
        texts = test["text"].tolist()
        stored = read_scores(fetched.path, texts, max_length)
        probs, labels, _ = timed_predict(platform, fetched, texts, max_length)
    assert stored is not None and stored.champion is not None
    assert stored.candidate.labels == labels
    assert np.array_equal(stored.candidate.probs, probs)
    y = encode_labels(test, labels)
    assert outcome.candidate.to_dict() == evaluate(y, probs, labels).to_dict()
    with FetchedAdapter(platform, champion) as fetched:
        c_probs, c_labels, _ = timed_predict(platform, fetched, texts, max_length)
    assert stored.champion.adapter_id == champion.id and stored.champion.scored.labels == c_labels
    assert np.array_equal(stored.champion.scored.probs, c_probs)
    assert outcome.champion.to_dict() == evaluate(y, c_probs, c_labels).to_dict()


def assert_reference_is_a_fresh_loads(platform, adapter):
    """The drift reference: the adapter's predictions as loaded again; the base's
    embeddings (the training's features) as the base loaded again gives them."""
    with FetchedAdapter(platform, adapter) as fetched:
        bundle = load_bundle(fetched.path)
        assert bundle is not None
        texts = bundle.reference.texts
        loaded = load_adapter(platform, fetched)
        probs = loaded.predict_proba(texts, bundle.max_length)
    assert [loaded.labels[i] for i in probs.argmax(1)] == bundle.reference.predicted
    np.testing.assert_allclose(bundle.reference.confidence, probs.max(1), rtol=0, atol=0)
    base = platform.resolve_base_by_sha256(adapter.base_model_sha256)
    fresh = base_embeddings(base, texts, bundle.max_length)
    np.testing.assert_allclose(bundle.reference.embeddings, fresh, atol=1e-5)


def outcome_max_length(fetched) -> int:
    return int(fetched.manifest["recipe_snapshot"]["recipe"]["training"]["max_length"])
