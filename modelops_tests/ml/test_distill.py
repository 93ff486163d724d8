"""The distillation loss and a student trained on a tiny teacher's soft labels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from modelops.config.recipe import load_recipe
from modelops.domain.dataset import prepare_dataset
from modelops.ml.catalog import Catalog
from modelops.ml.distill import UNLABELLED, SoftTargets, distillation_loss, teacher_log_probs
from modelops.ml.model import load_classifier, predict_proba
from modelops.ml.training import train_classifier
from modelops_tests.fixtures.workspace import make_workspace

LOGITS = [[2.0, 0.5, -1.0], [0.0, 1.0, 0.3]]
TEACHER = [[1.0, 2.0, 0.1], [-0.5, 0.2, 2.5]]


def hand_kl_term(student, teacher, temperature: float) -> float:
    """T^2 * mean over rows of sum_j q_j (log q_j - log p_j), softmaxes at T, by hand."""
    total = 0.0
    for s_row, t_row in zip(student, teacher, strict=True):
        s_exp = [math.exp(v / temperature) for v in s_row]
        t_exp = [math.exp(v / temperature) for v in t_row]
        p = [v / sum(s_exp) for v in s_exp]
        q = [v / sum(t_exp) for v in t_exp]
        total += sum(qj * (math.log(qj) - math.log(pj)) for qj, pj in zip(q, p, strict=True))
    return temperature**2 * total / len(student)


def test_kl_term_equals_a_hand_computation():
    logits = torch.tensor(LOGITS)
    teacher = torch.log_softmax(torch.tensor(TEACHER), dim=-1)  # stored as log-probabilities
    unlabelled = torch.tensor([UNLABELLED, UNLABELLED])
    for temperature in (1.0, 2.5):
        loss = distillation_loss(logits, unlabelled, teacher, temperature=temperature, alpha=1.0)
        assert loss.item() == pytest.approx(hand_kl_term(LOGITS, TEACHER, temperature), rel=1e-5)


def test_kl_term_is_zero_when_the_student_matches_the_teacher():
    teacher = torch.log_softmax(torch.tensor(TEACHER), dim=-1)
    loss = distillation_loss(
        torch.tensor(TEACHER) + 3.0, torch.tensor([0, 2]), teacher, temperature=2.0, alpha=1.0
    )
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


def test_alpha_zero_is_the_plain_cross_entropy():
    labels = torch.tensor([0, 2])
    teacher = torch.log_softmax(torch.tensor(TEACHER), dim=-1)
    a = torch.tensor(LOGITS, requires_grad=True)
    b = torch.tensor(LOGITS, requires_grad=True)
    loss = distillation_loss(a, labels, teacher, temperature=2.0, alpha=0.0, label_smoothing=0.1)
    plain = torch.nn.functional.cross_entropy(b, labels, label_smoothing=0.1)
    loss.backward()
    plain.backward()
    assert torch.equal(loss.detach(), plain.detach())
    assert torch.equal(a.grad, b.grad)


def test_the_mix_weights_kl_and_labelled_cross_entropy():
    logits = torch.tensor(LOGITS)
    teacher = torch.log_softmax(torch.tensor(TEACHER), dim=-1)
    labels = torch.tensor([1, UNLABELLED])  # the second row is a production text
    loss = distillation_loss(logits, labels, teacher, temperature=2.0, alpha=0.3)
    ce = torch.nn.functional.cross_entropy(logits[:1], labels[:1]).item()
    expected = 0.3 * hand_kl_term(LOGITS, TEACHER, 2.0) + 0.7 * ce
    assert loss.item() == pytest.approx(expected, rel=1e-5)


@pytest.fixture(scope="module")
def setup(tiny_catalog, tmp_path_factory):
    root = tmp_path_factory.mktemp("distill")
    settings = make_workspace(root, tiny_catalog, rows=360)
    loaded = load_recipe(settings.recipes_dir / "demo.yaml")
    base = Catalog.load(tiny_catalog).resolve("tiny@stable")
    return loaded, base, prepare_dataset(loaded), root


def fit(setup, out, *, seed: int, epochs: int, soft=None, **training):
    """Train the demo recipe with these training settings (no model selection)."""
    loaded, base, dataset, _ = setup
    recipe = loaded.recipe
    head = recipe.head.model_copy(update={"init": training.pop("init", "probe")})
    training = {"seed": seed, "epochs": epochs, "select_best": False, **training}
    recipe = recipe.model_copy(
        update={"training": recipe.training.model_copy(update=training), "head": head}
    )
    return train_classifier(
        recipe=recipe,
        base=base,
        dataset=dataset,
        out_dir=out,
        threads=1,
        emit=lambda _m: None,
        soft=soft,
    )


def predictions(setup, directory, texts) -> np.ndarray:
    tokenizer, model, _ = load_classifier(directory, setup[1].path)
    return predict_proba(tokenizer, model, texts, max_length=32).argmax(1)


# alpha 1 and a random head: no true label reaches the student, only soft labels.
PURE = {"init": "random", "learning_rate": 0.01, "head_learning_rate": 0.9}


def test_a_student_learns_the_teacher_from_soft_labels_alone(setup, tmp_path):
    """A student trained on a tiny teacher's soft labels of the training rows and of
    unlabelled texts agrees with the teacher on the test rows more than the same student
    trained on the same soft labels shuffled across the texts (the teacher's label
    frequencies without its text-to-label mapping) and than the untrained student."""
    _, base, dataset, _ = setup
    teacher = fit(setup, tmp_path / "teacher", seed=5, epochs=3).directory
    tokenizer, model, _ = load_classifier(teacher, base.path)
    train_texts = dataset.split("train")["text"].tolist()
    production = [f"{t} please" for t in train_texts[:40]]
    lines = []
    log_probs = teacher_log_probs(
        tokenizer, model, train_texts + production, max_length=32, batch_size=16, emit=lines.append
    )
    assert log_probs.shape == (len(train_texts) + len(production), len(dataset.labels))
    assert np.allclose(np.exp(log_probs).sum(1), 1.0, atol=1e-5)
    assert lines[-1].startswith(f"teacher soft labels: {len(log_probs)}/{len(log_probs)} texts")
    shuffled = log_probs[np.random.default_rng(0).permutation(len(log_probs))]
    test = dataset.split("test")["text"].tolist()
    taught = predictions(setup, teacher, test)
    agreement = {}
    for name, values in (("teacher", log_probs), ("shuffled", shuffled)):
        soft = SoftTargets(torch.from_numpy(values), tuple(production), 2.0, 1.0)
        student = fit(setup, tmp_path / name, seed=9, epochs=6, soft=soft, **PURE)
        agreement[name] = (predictions(setup, student.directory, test) == taught).mean()
    untrained = fit(setup, tmp_path / "u", seed=9, epochs=1, **{**PURE, "learning_rate": 1e-9})
    agreement["untrained"] = (predictions(setup, untrained.directory, test) == taught).mean()
    assert agreement["teacher"] > agreement["shuffled"] + 0.1, agreement
    assert agreement["teacher"] > agreement["untrained"] + 0.1, agreement


def test_distilled_training_is_deterministic_and_differs_from_plain(setup, tmp_path):
    _, _, dataset, _ = setup
    n, k = len(dataset.split("train")), len(dataset.labels)
    rng = np.random.default_rng(0)
    log_probs = torch.log_softmax(torch.from_numpy(rng.normal(size=(n + 2, k))).float(), -1)
    soft = SoftTargets(log_probs, ("refund my order now", "card is gone"), 2.0, 0.5)
    first = fit(setup, tmp_path / "a", seed=5, epochs=1, soft=soft)
    second = fit(setup, tmp_path / "b", seed=5, epochs=1, soft=soft)
    plain = fit(setup, tmp_path / "c", seed=5, epochs=1)
    assert first.weights_sha256 == second.weights_sha256
    assert first.weights_sha256 != plain.weights_sha256


def test_soft_labels_must_cover_every_row(setup, tmp_path):
    _, _, dataset, _ = setup
    n, k = len(dataset.split("train")), len(dataset.labels)
    soft = SoftTargets(torch.zeros(n, k), ("one production text",), 2.0, 0.5)
    with pytest.raises(ValueError, match="soft labels"):
        fit(setup, tmp_path / "a", seed=5, epochs=1, soft=soft)
