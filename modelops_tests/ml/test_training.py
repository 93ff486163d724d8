"""Training with the tiny random BERT: deterministic, standard PEFT format, warm start."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from modelops.config.recipe import load_recipe
from modelops.domain.dataset import prepare_dataset
from modelops.ml.catalog import Catalog
from modelops.ml.model import load_classifier, pool, predict_proba
from modelops.ml.training import train_classifier
from modelops_tests.fixtures.workspace import make_workspace


@pytest.fixture(scope="module")
def setup(tiny_catalog, tmp_path_factory):
    root = tmp_path_factory.mktemp("training")
    settings = make_workspace(root, tiny_catalog, rows=360)
    loaded = load_recipe(settings.recipes_dir / "demo.yaml")
    base = Catalog.load(tiny_catalog).resolve("tiny@stable")
    return root, loaded, base, prepare_dataset(loaded)


def train(setup, out, **recipe_changes):
    root, loaded, base, dataset = setup
    recipe = loaded.recipe
    for section, values in recipe_changes.items():
        recipe = recipe.model_copy(
            update={section: getattr(recipe, section).model_copy(update=values)}
        )
    return train_classifier(
        recipe=recipe, base=base, dataset=dataset, out_dir=out, threads=1, emit=lambda _m: None
    )


def test_same_lineage_gives_identical_weights(setup, tmp_path):
    first = train(setup, tmp_path / "a")
    second = train(setup, tmp_path / "b")
    assert first.weights_sha256 == second.weights_sha256
    assert first.files["adapter_model.safetensors"] == second.files["adapter_model.safetensors"]
    other_seed = train(setup, tmp_path / "c", training={"seed": 6})
    assert other_seed.weights_sha256 != first.weights_sha256


def test_history_and_baseline_are_recorded(setup, tmp_path):
    result = train(setup, tmp_path / "a")
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert all(
        np.isfinite(h["train_loss"]) and 0 <= h["validation_accuracy"] <= 1 for h in result.history
    )
    assert result.baseline["method"] == "linear_probe"
    assert result.baseline["test"]["n"] == setup[3].stats["test_rows"]
    assert result.samples_per_second > 0


def test_adapter_is_standard_peft_and_loads_outside_modelops(setup, tmp_path):
    from peft import PeftModel
    from transformers import AutoModel, AutoTokenizer

    _, _, base, dataset = setup
    result = train(setup, tmp_path / "a")
    out = result.directory
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA"
    assert set(config["target_modules"]) == {"query", "value"}
    labels = json.loads((out / "labels.json").read_text())
    assert labels["labels"] == dataset.labels and labels["pooling"] == "mean"

    # Plain PEFT, no modelops code: encoder + adapter, mean pooling, head.
    tokenizer = AutoTokenizer.from_pretrained(str(base.path))
    encoder = PeftModel.from_pretrained(AutoModel.from_pretrained(str(base.path)), str(out)).eval()
    head = load_file(str(out / "head.safetensors"))
    texts = dataset.split("test")["text"].tolist()[:16]
    batch = tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
    with torch.no_grad():
        hidden = encoder(**batch).last_hidden_state
        emb = torch.nn.functional.normalize(pool(hidden, batch["attention_mask"], "mean"), dim=-1)
        plain = torch.softmax(emb @ head["weight"].T + head["bias"], dim=-1).numpy()

    tok, model, loaded_labels = load_classifier(out, base.path)
    ours = predict_proba(tok, model, texts, max_length=32)
    assert loaded_labels == dataset.labels
    assert ours.shape == (16, len(dataset.labels))
    np.testing.assert_allclose(ours, plain, atol=1e-5)


def test_lora_changes_the_encoder_and_probe_initialises_the_head(setup, tmp_path):
    result = train(setup, tmp_path / "a", training={"learning_rate": 0.01, "select_best": False})
    weights = load_file(str(result.directory / "adapter_model.safetensors"))
    lora_b = [v for k, v in weights.items() if "lora_B" in k]
    assert lora_b and any(float(t.abs().sum()) > 0 for t in lora_b)  # B starts at zero
    no_select = {"epochs": 1, "select_best": False}
    random_head = train(setup, tmp_path / "b", head={"init": "random"}, training=no_select)
    probe_head = train(setup, tmp_path / "c", training=no_select)
    assert random_head.weights_sha256 != probe_head.weights_sha256


def test_warm_start_continues_from_an_adapter(setup, tmp_path):
    _, loaded, base, dataset = setup
    recipe = loaded.recipe.model_copy(
        update={"training": loaded.recipe.training.model_copy(update={"select_best": False})}
    )
    first = train(setup, tmp_path / "a", training={"select_best": False})
    warm = train_classifier(
        recipe=recipe,
        base=base,
        dataset=dataset,
        out_dir=tmp_path / "w",
        threads=1,
        emit=lambda _m: None,
        warm_start=first.directory,
    )
    assert warm.weights_sha256 != first.weights_sha256
    assert (tmp_path / "w" / "adapter_model.safetensors").is_file()
    # The baseline of beats_baseline stays the probe on the frozen base, not one refitted
    # on the warm adapter's encoder (that one ties any warm-started candidate): on the same
    # rows it is the first training's probe, prediction for prediction.
    assert warm.baseline["method"] == "linear_probe"
    assert warm.baseline["test"]["predictions"] == first.baseline["test"]["predictions"]
    assert warm.baseline["test"]["accuracy"] == first.baseline["test"]["accuracy"]
    assert set(warm.baseline["warm_start_probe_test"]) == {"accuracy", "macro_f1"}
    saved = json.loads((tmp_path / "w" / "baseline.json").read_text())
    assert saved["test"]["predictions"] == first.baseline["test"]["predictions"]


def test_recipe_without_validation_split_trains(setup, tmp_path):
    from modelops.domain.dataset import dataset_from_rows

    root, loaded, base, dataset = setup
    no_val = dataset_from_rows(
        dataset.frame[["text", "label"]],
        labels=dataset.labels,
        validation_fraction=0.0,
        test_fraction=0.2,
    )
    assert no_val.stats["validation_rows"] == 0
    result = train_classifier(
        recipe=loaded.recipe,
        base=base,
        dataset=no_val,
        out_dir=tmp_path / "a",
        threads=1,
        emit=lambda _m: None,
    )
    assert len(result.history) == 2 and "validation_accuracy" not in result.history[0]


def test_the_best_validation_epoch_is_kept(setup, tmp_path):
    """Model selection by the ``best`` rule: the starting point (probe head, LoRA at zero)
    competes with every epoch, and the kept weights are the ones of the selected epoch."""
    result = train(
        setup, tmp_path / "a", training={"epochs": 3, "learning_rate": 0.05, "selection": "best"}
    )
    selected = [h["epoch"] for h in result.history if h["selected"]]
    scores = [h["validation_macro_f1"] for h in result.history]
    assert len(selected) <= 1
    if selected:
        assert scores[selected[0] - 1] == max(scores)
    no_selection = train(
        setup,
        tmp_path / "b",
        training={"epochs": 3, "learning_rate": 0.05, "select_best": False, "selection": "best"},
    )
    last_is_best = bool(selected) and selected[0] == 3
    assert (result.weights_sha256 == no_selection.weights_sha256) == last_is_best
    if not selected:  # the probe start won: LoRA B is still zero
        weights = load_file(str(result.directory / "adapter_model.safetensors"))
        assert all(float(v.abs().sum()) == 0 for k, v in weights.items() if "lora_B" in k)


def test_warm_start_fits_head_rows_for_labels_it_never_saw(setup, tmp_path):
    """An incremental run whose new rows bring a label the warm adapter never saw: that
    label's head row is fitted before training (it starts far below the others otherwise),
    while the rows of labels it saw stay as they were."""
    from dataclasses import replace

    from safetensors.torch import load_file

    from modelops.ml.warm_start import WarmStart

    _, loaded, base, dataset = setup
    frame = dataset.frame
    new_label = dataset.split("train")["label"].value_counts().index[0]
    without = replace(
        dataset, frame=frame[~((frame["split"] == "train") & (frame["label"] == new_label))]
    )
    train_classifier(
        recipe=loaded.recipe,
        base=base,
        dataset=without,
        out_dir=tmp_path / "c",
        threads=1,
        emit=lambda _m: None,
    )
    seen = frozenset(without.split("train")["label"])
    assert new_label not in seen
    quiet = loaded.recipe.model_copy(
        update={
            "training": loaded.recipe.training.model_copy(
                update={
                    "select_best": False,
                    "epochs": 1,
                    "learning_rate": 1e-9,
                    "head_learning_rate": 1e-9,
                }
            )
        }
    )

    def warm(out, warm_start):
        return train_classifier(
            recipe=quiet,
            base=base,
            dataset=dataset,
            out_dir=tmp_path / out,
            threads=1,
            emit=lambda _m: None,
            warm_start=warm_start,
        )

    extended = warm("e", WarmStart(tmp_path / "c", seen))
    kept = warm("k", tmp_path / "c")  # a bare path: every label counts as seen

    k = dataset.labels.index(new_label)
    rows = dataset.split("train")
    texts = rows.loc[rows["label"] == new_label, "text"].tolist()
    assert texts

    def hits(directory):
        tok, model, labels = load_classifier(directory, base.path)
        return float((predict_proba(tok, model, texts, max_length=32).argmax(1) == k).mean())

    assert hits(tmp_path / "c") == 0.0
    assert hits(tmp_path / "k") == 0.0
    assert hits(tmp_path / "e") > 0.5
    before = load_file(str(tmp_path / "c" / "head.safetensors"))
    after = load_file(str(tmp_path / "e" / "head.safetensors"))
    others = [i for i in range(len(dataset.labels)) if i != k]
    assert float(before["bias"][k]) <= -10.0 and float(after["bias"][k]) > -10.0
    torch.testing.assert_close(after["weight"][others], before["weight"][others], atol=1e-6, rtol=0)
    assert extended.weights_sha256 != kept.weights_sha256
