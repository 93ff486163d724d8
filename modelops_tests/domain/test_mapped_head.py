"""An old model's probabilities through a mapping: rename, merge, retire, keep, a split
decided by rules; why a mapping cannot give a candidate; the stored form."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from modelops.config.errors import InputError
from modelops.config.taxonomy import Taxonomy
from modelops.domain.mapped_head import MappedHead, mapped_blockers, mapping_from_canonical
from modelops.domain.taxonomy_mapping import step_mapping

OLD = ["a", "b", "c", "d", "e"]


def taxonomy(version: str, labels: list[str], mapping: dict | None = None) -> Taxonomy:
    doc: dict[str, Any] = {"name": "t", "version": version, "labels": [{"name": n} for n in labels]}
    if mapping is not None:
        doc["previous"] = "v1"
        doc["mapping"] = mapping
    return Taxonomy.model_validate(doc)


def step(labels: list[str], mapping: dict):
    return step_mapping(taxonomy("v1", OLD), taxonomy("v2", labels, mapping))


def random_probs(n: int, k: int, seed: int = 0) -> np.ndarray:
    raw = np.random.default_rng(seed).random((n, k))
    return raw / raw.sum(1, keepdims=True)


def test_rename_merge_keep_and_retire_sum_each_group():
    # a kept, b renamed to bee, c+d merged into cd, e retired
    mapping = step(
        ["a", "bee", "cd"], {"rename": {"b": "bee"}, "merge": {"cd": ["c", "d"]}, "retire": ["e"]}
    )
    head = MappedHead(mapping, OLD)
    probs = random_probs(6, 5)
    out = head.apply(probs, ["x"] * 6)
    assert head.target_labels == ["a", "bee", "cd"]
    kept = 1 - probs[:, 4]  # the retired label's mass leaves; the rest is renormalized
    np.testing.assert_allclose(out[:, 0], probs[:, 0] / kept)
    np.testing.assert_allclose(out[:, 1], probs[:, 1] / kept)
    np.testing.assert_allclose(out[:, 2], (probs[:, 2] + probs[:, 3]) / kept)
    np.testing.assert_allclose(out.sum(1), 1.0)
    assert mapped_blockers(mapping) == []


def test_merge_can_change_the_answer_for_the_better():
    # b alone is the most likely old label, but c and d together outweigh it
    mapping = step(["a", "b", "cd", "e"], {"merge": {"cd": ["c", "d"]}})
    head = MappedHead(mapping, OLD)
    out = head.apply(np.array([[0.1, 0.4, 0.25, 0.25, 0.0]]), ["x"])
    assert head.target_labels[int(out.argmax())] == "cd"


def test_model_label_order_is_its_own():
    mapping = step(["a", "b", "cd", "e"], {"merge": {"cd": ["c", "d"]}})
    order = ["e", "d", "c", "b", "a"]
    probs = random_probs(3, 5, seed=1)
    ours = MappedHead(mapping, order).apply(probs, ["x"] * 3)
    theirs = MappedHead(mapping, OLD).apply(probs[:, ::-1], ["x"] * 3)
    np.testing.assert_allclose(ours, theirs)
    with pytest.raises(InputError, match="not labels of"):
        MappedHead(mapping, ["a", "zzz"])


def test_a_split_follows_its_rules_and_shares_what_they_leave():
    split = {
        "a": {
            "into": ["a_stolen", "a_missing"],
            "rules": [
                {"label": "a_stolen", "keywords": ["stolen"]},
                {"label": "a_missing", "patterns": ["miss(ing)?"]},
            ],
        }
    }
    mapping = step(["a_stolen", "a_missing", "b", "c", "d", "e"], {"split": split})
    head = MappedHead(mapping, OLD)
    probs = np.array([[0.6, 0.1, 0.1, 0.1, 0.1]] * 3)
    out = head.apply(probs, ["my card was STOLEN", "card missing", "no rule here"])
    a_stolen, a_missing = 0, 1
    assert out[0, a_stolen] == pytest.approx(0.6) and out[0, a_missing] == 0
    assert out[1, a_missing] == pytest.approx(0.6) and out[1, a_stolen] == 0
    assert out[2, a_stolen] == pytest.approx(0.3) == out[2, a_missing]
    np.testing.assert_allclose(out.sum(1), 1.0)
    # Allowed when the rules decided every row of the data, refused with the count otherwise.
    assert mapped_blockers(mapping, review_rows=0) == []
    (reason,) = mapped_blockers(mapping, review_rows=7)
    assert "split of a left 7 rows to review" in reason


def test_an_added_label_blocks_a_mapped_candidate():
    mapping = step(["a", "b", "c", "d", "e", "new_one"], {"add": ["new_one"]})
    (reason,) = mapped_blockers(mapping)
    assert "adds new_one" in reason and "never predicts" in reason


def test_stored_form_round_trips_with_the_same_fingerprint():
    split = {
        "a": {
            "into": ["a1", "a2"],
            "rules": [
                {"label": "a1", "keywords": ["One Word"]},
                {"label": "a2", "patterns": ["two"]},
            ],
        }
    }
    mapping = step(
        ["a1", "a2", "bc", "d"], {"split": split, "merge": {"bc": ["b", "c"]}, "retire": ["e"]}
    )
    head = MappedHead(mapping, OLD)
    doc = head.to_dict()
    again = MappedHead.from_dict(doc)
    assert again.mapping.fingerprint() == mapping.fingerprint() == doc["mapping_fingerprint"]
    texts = ["one word", "two", "neither"]
    probs = random_probs(3, 5, seed=2)
    np.testing.assert_allclose(again.apply(probs, texts), head.apply(probs, texts))
    rebuilt = mapping_from_canonical(doc["mapping"], OLD, ["a1", "a2", "bc", "d"])
    assert rebuilt.fingerprint() == mapping.fingerprint()
    tampered = {**doc, "mapping_fingerprint": "0" * 64}
    with pytest.raises(InputError, match="mapping_fingerprint"):
        MappedHead.from_dict(tampered, "x/label_mapping.json")
