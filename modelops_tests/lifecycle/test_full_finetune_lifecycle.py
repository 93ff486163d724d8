"""A full fine-tune and a contrastive-stage adapter through the platform's steps with the
tiny BERT: trained, stored with their lineage and size, scored beside a LoRA champion,
evaluated with both costs side by side, served (on an encoder of its own beside the shared
base), scored by the predictor's loader, and reproduced bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from modelops.config.recipe import load_recipe
from modelops.lifecycle.dataset import build_dataset
from modelops.lifecycle.evaluate import evaluate_adapter
from modelops.lifecycle.fetch import FetchedAdapter, predict_with
from modelops.lifecycle.platform import Platform
from modelops.lifecycle.reproduce import reproduce
from modelops.lifecycle.train import train_adapter
from modelops.ml.adapter_methods import FULL_WEIGHTS_FILE
from modelops.ml.model import load_base
from modelops.serving.model_pool import ModelPool
from modelops_tests.fixtures.cost_meters import parameter_meter
from modelops_tests.fixtures.workspace import FULL_ADAPTER, LENIENT, make_workspace, write_recipe

QUIET = lambda _m: None  # noqa: E731
TEXTS = ["I lost my card yesterday", "please refund my order", "where is my parcel"]


@pytest.fixture
def platform(tiny_catalog, tmp_path):
    settings = make_workspace(tmp_path, tiny_catalog, rows=240)
    platform = Platform.from_settings(settings)
    yield platform
    platform.registry.close()


def train(platform, overrides: dict, messages: list[str] | None = None):
    training = {"epochs": 1, **overrides.get("training", {})}
    write_recipe(
        platform.settings.recipes_dir.parent, {**LENIENT, **overrides, "training": training}
    )
    loaded = load_recipe(platform.settings.recipes_dir / "demo.yaml")
    dataset = build_dataset(platform, loaded, emit=QUIET)
    emit = QUIET if messages is None else messages.append
    return train_adapter(platform, loaded, dataset, emit=emit), loaded


def test_full_fine_tune_beside_a_lora_champion(platform, tiny_base_dir):
    champion, _ = train(platform, {})
    platform.registry.promote(champion.id, who="t", why="first", evidence={}, force=True)
    messages: list[str] = []
    full, loaded = train(platform, {**FULL_ADAPTER, "training": {"layer_decay": 0.8}}, messages)

    # lineage: the method in the manifest, the settings in the recipe snapshot
    assert full.lineage["adapter_method"] == "full" and champion.lineage["adapter_method"] == "lora"
    assert full.lineage["recipe_snapshot"]["recipe"]["training"]["layer_decay"] == 0.8
    assert full.recipe_fingerprint != champion.recipe_fingerprint
    # the artifact is the whole encoder, and its size shows in the cost as it is
    with FetchedAdapter(platform, full) as fetched:
        encoder_bytes = (fetched.path / FULL_WEIGHTS_FILE).stat().st_size
        probs, labels = predict_with(platform, fetched, TEXTS, 32)  # batch scoring's loader
    assert full.metrics["cost_adapter_bytes"] > encoder_bytes
    assert full.metrics["cost_adapter_bytes"] > 5 * champion.metrics["cost_adapter_bytes"]
    # the training step scored the LoRA champion beside the full candidate
    assert any(f"champion {champion.id} scored beside the candidate" in m for m in messages)

    outcome = evaluate_adapter(platform, full.id, emit=QUIET, loaded=loaded, meter=parameter_meter)
    assert outcome.champion_id == champion.id
    doc = platform.registry.get(full.id).metrics["side_by_side"]
    assert doc["candidate"]["cost"]["adapter_bytes"] == full.metrics["cost_adapter_bytes"]
    assert doc["champion"]["cost"]["adapter_bytes"] == champion.metrics["cost_adapter_bytes"]
    for side in (doc["candidate"], doc["champion"]):
        assert side["cost"]["inference_memory_bytes"] > 0

    # served: the LoRA champion on the shared base, the full fine-tune on its own encoder
    pool = ModelPool(platform)
    shared, own = pool.load(champion), pool.load(full)
    served = pool.probabilities(own, TEXTS)
    np.testing.assert_allclose(served, probs, atol=1e-5)
    assert pool.probabilities(shared, TEXTS).shape == (len(TEXTS), len(shared.labels))
    one_copy = sum(p.numel() for p in load_base(tiny_base_dir)[1].parameters())
    assert pool.base_parameter_count() == one_copy
    assert pool.adapter_parameter_count() > one_copy  # the full fine-tune's whole encoder
    pool.unload(full.id)
    assert len(pool.bases()) == 1 and pool.get(full.id) is None

    assert reproduce(platform, full.id, emit=QUIET)["identical"] is True

    # the other way round: a LoRA candidate beside the full fine-tune as champion
    platform.registry.promote(full.id, who="t", why="full", evidence={}, force=True)
    messages.clear()
    train(platform, {"training": {"seed": 9}}, messages)
    assert any(f"champion {full.id} scored beside the candidate" in m for m in messages)


def test_contrastive_stage_adapter_is_recorded_and_reproduced(platform):
    stage = {"pairs_per_row": 2, "epochs": 1, "learning_rate": 0.01}
    version, _ = train(platform, {"training": {"contrastive": stage}})
    assert version.lineage["contrastive"]["pairs"] > 0
    snapshot = version.lineage["recipe_snapshot"]["recipe"]["training"]["contrastive"]
    assert snapshot["pairs_per_row"] == 2
    report = reproduce(platform, version.id, emit=QUIET)
    assert report["identical"] is True
    assert report["reproduced_weights_sha256"] == version.weights_sha256
