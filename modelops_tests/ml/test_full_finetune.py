"""Full fine-tuning (``adapter.method: full``) and layer-wise learning-rate decay with the
tiny random BERT: every encoder weight trains (LoRA leaves the base's untouched), the whole
encoder is the artifact and loads back to the same predictions, training is deterministic,
and each layer's learning rate is the one the formula gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from modelops.ml.adapter_methods import FULL_WEIGHTS_FILE, is_full_adapter, with_adapter
from modelops.ml.layer_decay import layer_depth
from modelops.ml.model import PooledClassifier, load_base, load_classifier, predict_proba
from modelops.ml.schedule import optimizer_and_schedule
from modelops_tests.fixtures.training_setup import tiny_training, train_quietly

FULL = {"adapter": {"method": "full"}}


@pytest.fixture(scope="module")
def setup(tiny_catalog, tmp_path_factory):
    return tiny_training(tmp_path_factory.mktemp("full"), tiny_catalog)


def recipe_with(loaded, adapter: dict | None = None, **training):
    recipe = loaded.recipe
    adapter_settings = recipe.adapter
    if adapter is not None:  # a fresh section: the LoRA fields of the demo recipe dropped
        adapter_settings = type(recipe.adapter).model_validate(adapter)
    return recipe.model_copy(
        update={
            "adapter": adapter_settings,
            "training": recipe.training.model_copy(update=training),
        }
    )


def train(setup, out, recipe, **options):
    _, base, dataset = setup
    return train_quietly(recipe, base, dataset, out, **options)


def test_full_fine_tune_changes_every_encoder_weight_lora_none(setup, tmp_path):
    loaded, base, _ = setup
    no_select = {"select_best": False, "learning_rate": 0.01}
    full = train(setup, tmp_path / "full", recipe_with(loaded, FULL["adapter"], **no_select))
    assert is_full_adapter(full.directory) and full.lora_nonzero
    assert not (full.directory / "adapter_model.safetensors").exists()
    trained = load_file(str(full.directory / FULL_WEIGHTS_FILE))
    _, encoder = load_base(base.path)
    original = encoder.state_dict()
    assert set(trained) == set(original)
    moved = {k for k, v in trained.items() if not torch.equal(v, original[k])}
    # every weight that takes part in the forward pass moved; the pooler is unused by
    # mean pooling and gets no gradient
    used = {k for k in original if not k.startswith("pooler.")}
    assert used <= moved and not moved - used
    assert set(full.files) >= {FULL_WEIGHTS_FILE, "head.safetensors"}

    lora = train(setup, tmp_path / "lora", recipe_with(loaded, **no_select))
    _, tok_model, _ = load_classifier(lora.directory, base.path)
    base_part = {
        k.removeprefix("base_model.model.").replace(".base_layer", ""): v
        for k, v in tok_model.encoder.state_dict().items()
        if "lora_" not in k
    }
    assert all(torch.equal(base_part[k], original[k]) for k in original)


def test_full_fine_tune_round_trip_and_determinism(setup, tmp_path):
    loaded, base, dataset = setup
    recipe = recipe_with(loaded, FULL["adapter"], layer_decay=0.8, epochs=1)
    first = train(setup, tmp_path / "a", recipe)
    second = train(setup, tmp_path / "b", recipe)
    assert first.weights_sha256 == second.weights_sha256
    other = train(setup, tmp_path / "c", recipe_with(loaded, FULL["adapter"], seed=6, epochs=1))
    assert other.weights_sha256 != first.weights_sha256

    texts = dataset.split("test")["text"].tolist()
    kept = train(setup, tmp_path / "d", recipe, keep_model=True)
    in_memory = predict_proba(kept.trained.tokenizer, kept.trained.model, texts, max_length=32)
    tokenizer, model, labels = load_classifier(kept.directory, base.path)
    loaded_back = predict_proba(tokenizer, model, texts, max_length=32)
    assert labels == dataset.labels
    np.testing.assert_allclose(loaded_back, in_memory, atol=1e-6)
    assert not any(p.requires_grad for p in model.encoder.parameters())


def test_full_warm_start_continues_from_the_whole_encoder(setup, tmp_path):
    loaded, base, dataset = setup
    recipe = recipe_with(loaded, FULL["adapter"], epochs=1, select_best=False)
    first = train(setup, tmp_path / "a", recipe)
    warm = train(setup, tmp_path / "w", recipe, warm_start=first.directory)
    assert is_full_adapter(warm.directory) and warm.weights_sha256 != first.weights_sha256
    # the baseline stays the probe on the frozen base (loaded again for a full fine-tune)
    assert warm.baseline["test"]["predictions"] == first.baseline["test"]["predictions"]


@pytest.mark.parametrize("method", ["full", "lora"])
def test_layer_decay_gives_each_layer_its_rate(setup, method):
    loaded, base, dataset = setup
    adapter = FULL["adapter"] if method == "full" else None
    recipe = recipe_with(loaded, adapter, learning_rate=0.01, head_learning_rate=0.05)
    decay = 0.5
    settings = recipe.training.model_copy(update={"layer_decay": decay})
    _, encoder = load_base(base.path)
    model = with_adapter(PooledClassifier(encoder, len(dataset.labels), "mean"), recipe.adapter)
    optimizer, _ = optimizer_and_schedule(model, settings, total_steps=10)
    rate = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    layers = encoder.config.num_hidden_layers
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert len(rate) == len(trainable)  # every trainable weight in one group
    depths = set()
    for name, param in trainable:
        if name.startswith("head."):
            assert rate[id(param)] == 0.05
            continue
        if ".embeddings." in name:
            depth = 0
        elif ".layer.0." in name:
            depth = 1
        elif ".layer.1." in name:
            depth = 2
        else:  # the pooler
            depth = layers
        depths.add(depth)
        assert rate[id(param)] == pytest.approx(0.01 * decay ** (layers - depth))
    assert depths == ({0, 1, 2} if method == "full" else {1, 2})  # LoRA: query/value only
    if method == "full":  # the lowest rate is the embeddings', 0.01 * 0.5^2
        assert min(rate.values()) == pytest.approx(0.0025)
    no_decay, _ = optimizer_and_schedule(model, recipe.training, total_steps=10)
    assert [g["lr"] for g in no_decay.param_groups] == [0.01, 0.05]  # off: as before


def test_layer_depth_reads_bert_mpnet_and_peft_names():
    assert layer_depth("embeddings.word_embeddings.weight", 12) == 0
    assert layer_depth("base_model.model.embeddings.LayerNorm.bias", 6) == 0
    assert layer_depth("encoder.layer.0.attention.self.query.weight", 6) == 1
    assert (
        layer_depth(
            "base_model.model.encoder.layer.5.attention.self.value.lora_B.default.weight", 6
        )
        == 6
    )
    assert layer_depth("encoder.layer.11.attention.attn.q.weight", 12) == 12  # MPNet
    assert layer_depth("encoder.relative_attention_bias.weight", 12) == 12
    assert layer_depth("pooler.dense.weight", 6) == 6
    assert layer_depth("model.layers.3.mlp.Wi.weight", 22) == 4  # ModernBERT-style


class Crash(Exception):
    pass


def test_full_fine_tune_with_decay_and_stage_resumes_to_the_same_weights(setup, tmp_path):
    """A run stopped after its mid-epoch checkpoints resumes (the contrastive stage run
    again, every layer's optimizer group restored) to the uninterrupted run's weights."""
    from modelops.config.recipe import ContrastiveSettings
    from modelops.ml.checkpoint import Checkpointer

    loaded, _, _ = setup
    stage = ContrastiveSettings(pairs_per_row=2, learning_rate=0.001)
    recipe = recipe_with(
        loaded, FULL["adapter"], epochs=2, layer_decay=0.7, contrastive=stage, learning_rate=0.01
    )
    whole = train(setup, tmp_path / "whole", recipe)

    def stop(epoch, _model):
        raise Crash(epoch)

    checkpoints = Checkpointer(tmp_path / "checkpoint", every_steps=2)
    with pytest.raises(Crash):
        train(setup, tmp_path / "a", recipe, checkpointer=checkpoints, on_epoch=stop)
    assert (tmp_path / "checkpoint" / "state.json").is_file()
    messages: list[str] = []
    resumed = train(setup, tmp_path / "b", recipe, checkpointer=checkpoints, emit=messages.append)
    assert any(m.startswith("resuming from checkpoint") for m in messages)
    assert any(m.startswith("contrastive stage done") for m in messages)
    assert resumed.weights_sha256 == whole.weights_sha256
