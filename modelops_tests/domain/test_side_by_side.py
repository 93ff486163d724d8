"""The side-by-side document of a base change and its markdown table."""

from __future__ import annotations

import numpy as np

from modelops.domain.evaluation import evaluate
from modelops.domain.side_by_side import (
    model_side,
    side_by_side,
    side_by_side_markdown,
    verdict_sentence,
)

LABELS = ["a", "b", "c"]


def scored(predicted: list[int]):
    y = np.array([0, 1, 2, 0, 1, 2])
    probs = np.full((6, 3), 0.1)
    probs[np.arange(6), predicted] = 0.8
    return evaluate(y, probs, LABELS)


def test_both_columns_on_the_same_rows_with_cost():
    new = model_side(
        7,
        "tiny@w",
        scored([0, 1, 2, 0, 1, 1]),
        {"train_wall_seconds": 2.5, "adapter_bytes": 3 * 2**20, "other": 1},
        6,
    )
    old = model_side(
        3,
        "tiny@a",
        scored([0, 1, 2, 0, 1, 2]),
        {"train_wall_seconds": 1.5, "latency_seconds_per_32": 0.01},
        6,
    )
    doc = side_by_side(new, old, note="champion 3 (v1)")
    assert doc["base_changed"] and doc["same_rows"]
    assert new["cost"] == {"train_wall_seconds": 2.5, "adapter_bytes": 3 * 2**20}  # known only
    assert new["per_label_f1"]["c"] < old["per_label_f1"]["c"] == 1.0
    table = side_by_side_markdown(doc)
    assert "| | candidate 7 (tiny@w) | champion 3 (tiny@a) |" in table
    assert "| F1 c | 0.6667 | 1 |" in table
    assert "| adapter_bytes | 3.0 MiB | n/a |" in table
    assert "| latency_seconds_per_32 | n/a | 0.01 |" in table
    assert "peak_gpu_bytes" not in table  # neither side has it
    assert table.endswith("champion 3 (v1)")
    failed = verdict_sentence(doc, False, ["min_macro_f1"])
    assert failed == (
        "adapter 7 on tiny@w failed gate(s) min_macro_f1; champion 3 on tiny@a keeps serving"
    )
    assert "passed every gate" in verdict_sentence(doc, True, [])


def test_no_champion_is_one_column():
    new = model_side(1, "tiny@a", scored([0, 1, 2, 0, 1, 2]), {}, 6)
    doc = side_by_side(new, None)
    assert not doc["base_changed"] and not doc["same_rows"]
    assert "| accuracy | 1 | n/a |" in side_by_side_markdown(doc)
    assert verdict_sentence(doc, False, ["x"]).endswith("nothing is promoted")


def test_the_cost_gate_shows_in_the_table_and_the_verdict():
    new = model_side(
        7,
        "tiny@w",
        scored([0, 1, 2, 0, 1, 2]),
        {"inference_seconds_per_32": 0.08, "inference_memory_bytes": 3 * 2**20},
        6,
    )
    old = model_side(
        3,
        "tiny@a",
        scored([0, 1, 2, 0, 1, 2]),
        {"inference_seconds_per_32": 0.05, "inference_memory_bytes": 2 * 2**20},
        6,
    )
    doc = side_by_side(new, old)
    doc["cost_ratio"] = {
        "seconds": 1.6,
        "seconds_lower_bound": 1.55,
        "memory": 1.5,
        "rounds": 16,
        "confidence": 0.95,
        "measured": "timed here",
    }
    table = side_by_side_markdown(doc)
    assert "| inference_seconds_per_32 | 0.08 | 0.05 |" in table
    assert "| inference_memory_bytes | 3.0 MiB | 2.0 MiB |" in table
    assert (
        "Inference cost, candidate / champion: 1.60x seconds per 32 texts (95% lower bound "
        "1.55x), 1.50x memory; timed here." in table
    )
    verdict = verdict_sentence(doc, False, ["gain_worth_cost"], "inference cost 1.60x ...")
    assert verdict == (
        "adapter 7 on tiny@w failed gate(s) gain_worth_cost; champion 3 on tiny@a keeps "
        "serving. Cost: inference cost 1.60x ..."
    )
