"""Distillation through the platform's steps: a student recipe (``demo``) trained on the
soft labels of a teacher recipe's champion over its training texts and production texts.
Its lineage records the teacher and the stored soft labels, ``reproduce`` gives the same
weights, a new teacher champion gives a new adapter, production texts never include a
held-out text, and the evaluation puts the teacher beside the student and its own-data
champion."""

from __future__ import annotations

import json
import struct
from types import SimpleNamespace

import pytest

from modelops.config.errors import ModelopsError
from modelops.config.fingerprint import sha256_bytes
from modelops.config.recipe import load_recipe, load_recipes
from modelops.domain.dataset import split_of
from modelops.domain.text import normalize_text
from modelops.lifecycle.dataset import build_dataset, load_dataset
from modelops.lifecycle.evaluate import evaluate_adapter
from modelops.lifecycle.platform import Platform
from modelops.lifecycle.reproduce import reproduce
from modelops.lifecycle.train import train_adapter
from modelops_tests.fixtures.cost_meters import parameter_meter
from modelops_tests.fixtures.prediction_rows import record
from modelops_tests.fixtures.workspace import LENIENT, make_workspace, merge, write_recipe

QUIET = lambda _message: None  # noqa: E731
MONITORING = {"monitoring": {"window_size": 20, "n_bootstrap": 10}}
STUDENT = merge(merge(LENIENT, MONITORING), {"training": {"epochs": 1}})
DISTILL = {
    "distillation": {
        "teacher": "teacher",
        "temperature": 2.0,
        "alpha": 0.7,
        "production_texts": {"max_rows": 40},
    }
}
TEACHER = merge(
    merge(LENIENT, MONITORING),
    {"name": "teacher", "adapter": {"r": 8, "alpha": 16}, "training": {"epochs": 1, "seed": 7}},
)
NEW_TEXTS = [f"my card number {i} was charged twice, help" for i in range(12)]


def train(platform, settings, name: str):
    loaded = {r.name: r for r in load_recipes(settings.recipes_dir)}[name]
    dataset = build_dataset(platform, loaded, emit=QUIET)
    return train_adapter(platform, loaded, dataset, emit=QUIET), loaded, dataset


def serve(platform, adapter_id: int) -> None:
    platform.registry.promote(adapter_id, who="tester", why="test", evidence={}, force=True)


@pytest.fixture(scope="module")
def world(tiny_catalog, tmp_path_factory):
    """The teacher's champion, the student's own-data champion, production traffic of the
    student (new texts, held-out texts, a redacted one, duplicates), then the student
    distilled."""
    root = tmp_path_factory.mktemp("distill")
    settings = make_workspace(root, tiny_catalog, rows=240, recipe=STUDENT)
    write_recipe(root, TEACHER)
    platform = Platform.from_settings(settings)
    teacher, _, _ = train(platform, settings, "teacher")
    serve(platform, teacher.id)
    own, _, dataset = train(platform, settings, "demo")
    serve(platform, own.id)
    frame = load_dataset(platform, dataset.to_dict()).frame
    held = {s: frame.loc[frame["split"] == s, "text"].tolist()[:2] for s in ("test", "validation")}
    seen = frame.loc[frame["split"] == "train", "text"].tolist()[:2]
    texts = NEW_TEXTS + NEW_TEXTS[:3] + held["test"] + held["validation"] + seen
    rows = [record(t, recipe="demo", adapter_id=own.id) for t in texts]
    rows.append(record("a redacted text", recipe="demo", redact=True, adapter_id=own.id))
    ids = platform.production_log.log_predictions(rows)
    write_recipe(root, merge(STUDENT, DISTILL))
    student, loaded, dataset = train(platform, settings, "demo")
    yield SimpleNamespace(
        settings=settings,
        root=root,
        platform=platform,
        teacher=teacher,
        own=own,
        student=student,
        loaded=loaded,
        dataset=dataset,
        ids=ids,
        held=held,
    )
    platform.registry.close()


def soft_label_texts(world) -> tuple[list[str], int]:
    stored = world.student.lineage["distillation"]["soft_labels"]
    data = world.platform.store.get_bytes(stored["key"], expected_sha256=stored["sha256"])
    (length,) = struct.unpack("<Q", data[:8])
    meta = json.loads(data[8 : 8 + length])["__metadata__"]
    return json.loads(meta["texts"]), int(meta["train_rows"])


def test_lineage_records_the_teacher_and_the_soft_labels(world):
    record_ = world.student.lineage["distillation"]
    teacher = world.teacher
    assert record_["teacher_recipe"] == "teacher"
    assert record_["teacher_adapter_id"] == teacher.id
    assert record_["teacher_weights_sha256"] == teacher.weights_sha256
    assert record_["teacher_base_model"] == teacher.base_model
    assert (record_["temperature"], record_["alpha"], record_["pinned"]) == (2.0, 0.7, False)
    stored = record_["soft_labels"]
    data = world.platform.store.get_bytes(stored["key"])
    assert sha256_bytes(data) == stored["sha256"]
    assert world.student.lineage["mode"] == "full"
    assert world.student.recipe_fingerprint != world.own.recipe_fingerprint
    texts, train_rows = soft_label_texts(world)
    assert stored["rows"] == len(texts) and stored["train_rows"] == train_rows
    assert stored["production_rows"] == record_["production_texts"]["count"] > 0


def test_production_texts_are_new_train_split_texts_only(world):
    selection = world.student.lineage["distillation"]["production_texts"]
    texts, train_rows = soft_label_texts(world)
    production = texts[train_rows:]
    held = world.held["test"] + world.held["validation"]
    assert not set(production) & set(held)
    assert not set(production) & set(texts[:train_rows])
    assert len(production) == len(set(production)) == selection["count"]
    data = world.loaded.recipe.data

    def in_train(text: str) -> bool:
        digest = sha256_bytes(normalize_text(text).encode())
        return split_of(digest, data.validation_fraction, data.test_fraction) == "train"

    trainable = [t for t in NEW_TEXTS if in_train(t)]
    assert 0 < len(trainable) < len(NEW_TEXTS)  # the texts test both sides of the rule
    assert production == trainable  # oldest first, each once
    repeats = sum(in_train(t) for t in NEW_TEXTS[:3])
    left = selection["left_out"]
    assert left == {
        "redacted": 1,
        "empty_or_too_long": 0,
        "held_out": len(held) + (len(NEW_TEXTS) - len(trainable)) + (3 - repeats),
        "duplicate": repeats + 2,  # repeated new texts, and the two training texts
    }
    assert selection["first_id"] >= world.ids[0] and selection["last_id"] <= world.ids[-1]


def test_training_again_reuses_the_adapter_and_reproduce_gives_its_weights(world):
    again, _, _ = train(world.platform, world.settings, "demo")
    assert again.id == world.student.id
    report = reproduce(world.platform, world.student.id, emit=QUIET)
    assert report["identical"] is True
    assert report["reproduced_weights_sha256"] == world.student.weights_sha256


def test_evaluation_puts_the_teacher_beside_the_student_and_its_own_champion(world):
    outcome = evaluate_adapter(
        world.platform, world.student.id, emit=QUIET, loaded=world.loaded, meter=parameter_meter
    )
    doc = outcome.side_by_side
    assert doc["candidate"]["adapter_id"] == world.student.id
    assert doc["champion"]["adapter_id"] == world.own.id  # the gates' comparison, as before
    assert outcome.champion_id == world.own.id
    teacher = doc["teacher"]
    assert teacher["adapter_id"] == world.teacher.id and teacher["recipe"] == "teacher"
    assert teacher["rows"] == doc["candidate"]["rows"]
    assert 0.0 <= teacher["accuracy"] <= 1.0
    assert teacher["cost"]["train_wall_seconds"] > 0
    # the teacher has the larger LoRA: the parameter meter makes it the costlier one
    assert doc["teacher_cost_ratio"]["seconds"] > 1.0
    assert teacher["cost"]["inference_seconds_per_32"] > 0


def test_a_new_teacher_champion_gives_a_new_student(world):
    write_recipe(world.root, merge(TEACHER, {"training": {"seed": 8}}))
    newer, _, _ = train(world.platform, world.settings, "teacher")
    assert newer.weights_sha256 != world.teacher.weights_sha256
    serve(world.platform, newer.id)
    student, _, _ = train(world.platform, world.settings, "demo")
    assert student.id != world.student.id
    assert student.recipe_fingerprint == world.student.recipe_fingerprint
    assert student.lineage["distillation"]["teacher_adapter_id"] == newer.id
    assert student.weights_sha256 != world.student.weights_sha256
    serve(world.platform, world.teacher.id)  # the first teacher serves again


def test_a_pinned_teacher_of_another_recipe_is_refused(world):
    pinned = merge(DISTILL, {"distillation": {"adapter_id": world.own.id}})
    write_recipe(world.root, merge(STUDENT, pinned))
    loaded = load_recipe(world.settings.recipes_dir / "demo.yaml")
    dataset = build_dataset(world.platform, loaded, emit=QUIET)
    try:
        with pytest.raises(ModelopsError, match="distillation.teacher: adapter .* recipe 'demo'"):
            train_adapter(world.platform, loaded, dataset, emit=QUIET)
    finally:
        write_recipe(world.root, merge(STUDENT, DISTILL))
