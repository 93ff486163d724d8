"""Metrics of modelops.domain.evaluation against hand-computed cases and scikit-learn."""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pytest
from matplotlib import image as mpimg
from sklearn import metrics as skm

from modelops.domain.evaluation import (
    Evaluation,
    confusion_matrix_png,
    evaluate,
    expected_calibration_error,
    markdown_table,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def probs_for(predicted: list[int], k: int, top: float = 0.7) -> np.ndarray:
    """Rows whose argmax is ``predicted``, with ``top`` on it and the rest spread evenly."""
    probs = np.full((len(predicted), k), (1.0 - top) / (k - 1))
    probs[np.arange(len(predicted)), predicted] = top
    return probs


# 6 samples, 3 labels. Confusion (rows true): a -> [1, 1, 0], b -> [0, 2, 0], c -> [1, 0, 1].
Y_TRUE = [0, 0, 1, 1, 2, 2]
Y_PRED = [0, 1, 1, 1, 2, 0]
LABELS = ["a", "b", "c"]


@pytest.fixture
def small() -> Evaluation:
    return evaluate(Y_TRUE, probs_for(Y_PRED, 3), LABELS)


def test_hand_computed_small_case(small: Evaluation) -> None:
    assert small.labels == LABELS
    assert small.n == 6
    assert small.confusion == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert small.accuracy == pytest.approx(4 / 6)
    # a: tp 1 of 2 predicted, 2 true; b: tp 2 of 3 predicted, 2 true; c: tp 1 of 1 predicted.
    expected = {
        "a": (0.5, 0.5, 0.5),
        "b": (2 / 3, 1.0, 0.8),
        "c": (1.0, 0.5, 2 / 3),
    }
    for label, (precision, recall, f1) in expected.items():
        m = small.per_label[label]
        assert m["precision"] == pytest.approx(precision)
        assert m["recall"] == pytest.approx(recall)
        assert m["f1"] == pytest.approx(f1)
        assert m["support"] == 2
    assert small.macro_f1 == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    # Every confidence is 0.7, all in one bin with accuracy 4/6.
    assert small.ece == pytest.approx(0.7 - 4 / 6)


def test_matches_sklearn_on_random_predictions() -> None:
    rng = np.random.default_rng(7)
    k, n = 6, 300
    y_true = rng.integers(0, k - 1, size=n)  # label 5 never occurs in the truth
    probs = rng.dirichlet(np.full(k, 0.5), size=n)
    probs[:, 4] = 0.0  # label 4 is never predicted
    probs /= probs.sum(axis=1, keepdims=True)
    y_pred = probs.argmax(axis=1)
    assert 5 in y_pred and 4 in y_true and 4 not in y_pred

    result = evaluate(y_true, probs, [f"l{i}" for i in range(k)])

    assert result.accuracy == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert result.macro_f1 == pytest.approx(
        skm.f1_score(y_true, y_pred, average="macro", zero_division=0)
    )
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=list(range(k)), zero_division=0
    )
    for i in range(k):
        m = result.per_label[f"l{i}"]
        assert m["precision"] == pytest.approx(precision[i])
        assert m["recall"] == pytest.approx(recall[i])
        assert m["f1"] == pytest.approx(f1[i])
        assert m["support"] == support[i]
    assert result.confusion == skm.confusion_matrix(y_true, y_pred, labels=range(k)).tolist()
    assert result.ece == pytest.approx(expected_calibration_error(y_true, probs))


def test_label_never_predicted_scores_zero_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = evaluate([0, 1, 2, 2], probs_for([0, 1, 1, 0], 3), ["a", "b", "c"])
    c = result.per_label["c"]
    assert (c["precision"], c["recall"], c["f1"], c["support"]) == (0.0, 0.0, 0.0, 2)
    assert result.macro_f1 == pytest.approx((2 / 3 + 2 / 3 + 0.0) / 3)


def test_label_absent_from_truth_and_predictions_is_left_out_of_macro_f1() -> None:
    result = evaluate([0, 0, 1, 1], probs_for([0, 1, 1, 1], 3), ["a", "b", "unused"])
    assert result.per_label["unused"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    f1_a, f1_b = result.per_label["a"]["f1"], result.per_label["b"]["f1"]
    assert result.macro_f1 == pytest.approx((f1_a + f1_b) / 2)
    assert result.confusion[2] == [0, 0, 0]


def test_label_predicted_but_absent_from_truth_counts_in_macro_f1() -> None:
    result = evaluate([0, 0, 1, 1], probs_for([0, 2, 1, 1], 3), ["a", "b", "c"])
    assert result.per_label["c"]["support"] == 0
    assert result.per_label["c"]["precision"] == 0.0
    f1 = [result.per_label[x]["f1"] for x in "abc"]
    assert result.macro_f1 == pytest.approx(sum(f1) / 3)


def test_ece_zero_for_confident_correct_one_hot() -> None:
    y = [0, 1, 2, 1]
    assert expected_calibration_error(y, np.eye(3)[y]) == 0.0
    assert evaluate(y, np.eye(3)[y], ["a", "b", "c"]).ece == 0.0


def test_ece_hand_computed() -> None:
    probs = np.array([[0.9, 0.1], [0.91, 0.09], [0.3, 0.7], [0.45, 0.55]])
    y = [0, 1, 1, 0]  # correct, wrong, correct, wrong
    # 15 bins: 0.9 and 0.91 share (0.867, 0.933] -> accuracy 0.5 vs confidence 0.905;
    # 0.7 alone (accuracy 1), 0.55 alone (accuracy 0).
    expected = 2 / 4 * abs(0.5 - 0.905) + 1 / 4 * abs(1 - 0.7) + 1 / 4 * abs(0 - 0.55)
    assert expected_calibration_error(y, probs) == pytest.approx(expected)
    # One bin: accuracy 0.5 against mean confidence 0.765.
    assert expected_calibration_error(y, probs, n_bins=1) == pytest.approx(0.765 - 0.5)


def test_float32_softmax_rows_are_accepted() -> None:
    logits = np.random.default_rng(1).normal(size=(50, 4)).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    result = evaluate(np.arange(50, dtype=np.int32) % 4, probs, ["a", "b", "c", "d"])
    assert result.n == 50
    assert sum(map(sum, result.confusion)) == 50


@pytest.mark.parametrize(
    ("y_true", "probs", "labels", "match"),
    [
        ([0, 1], np.array([0.5, 0.5]), ["a", "b"], "two-dimensional"),
        ([0, 1, 0], np.eye(2), ["a", "b"], "2 rows but y_true has 3"),
        ([0, 1], np.eye(2), ["a", "b", "c"], "2 columns but there are 3 labels"),
        ([0, 1], np.array([[0.5, 0.6], [0.5, 0.5]]), ["a", "b"], "row 0 sums to"),
        ([0, 1], np.array([[1.5, -0.5], [0.5, 0.5]]), ["a", "b"], "negative"),
        ([0, 1], np.array([[np.nan, 1.0], [0.5, 0.5]]), ["a", "b"], "NaN"),
        ([0, 2], np.eye(2), ["a", "b"], r"y_true\[1\] = 2"),
        ([0.0, 1.0], np.eye(2), ["a", "b"], "integer"),
        ([], np.zeros((0, 2)), ["a", "b"], "empty"),
        ([0, 1], np.eye(2), ["a", "a"], "not unique: a"),
        ([[0, 1]], np.eye(2), ["a", "b"], "one-dimensional"),
    ],
)
def test_bad_input_is_rejected_clearly(y_true, probs, labels, match) -> None:
    with pytest.raises(ValueError, match=match):
        evaluate(y_true, probs, labels)


def test_ece_rejects_zero_bins() -> None:
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error([0], np.eye(2)[:1], n_bins=0)


def test_dict_round_trip_through_json(small: Evaluation) -> None:
    d = small.to_dict()
    text = json.dumps(d)
    restored = Evaluation.from_dict(json.loads(text))
    assert restored == small
    assert restored.to_dict() == d
    assert isinstance(d["per_label"]["a"]["support"], int)


def test_to_dict_turns_numpy_numbers_into_plain_ones(small: Evaluation) -> None:
    d = small.to_dict()
    d["accuracy"] = np.float32(0.5)
    d["confusion"] = np.asarray(d["confusion"])
    json.dumps(Evaluation.from_dict(d).to_dict())


def test_from_dict_names_missing_fields(small: Evaluation) -> None:
    d = small.to_dict()
    del d["ece"]
    with pytest.raises(ValueError, match="ece"):
        Evaluation.from_dict(d)


def _decode_png(data: bytes) -> np.ndarray:
    assert data.startswith(PNG_SIGNATURE)
    return mpimg.imread(io.BytesIO(data), format="png")


def test_confusion_matrix_png_decodes_and_grows_with_labels(small: Evaluation) -> None:
    image_small = _decode_png(confusion_matrix_png(small, title="demo"))

    rng = np.random.default_rng(3)
    k = 12
    y = rng.integers(0, k, size=120)
    bigger = evaluate(y, rng.dirichlet(np.ones(k), size=120), [f"label {i}" for i in range(k)])
    image_big = _decode_png(confusion_matrix_png(bigger))

    assert image_small.ndim == 3 and image_small.shape[0] > 100 and image_small.shape[1] > 100
    assert image_big.shape[0] > image_small.shape[0]
    assert image_big.shape[1] > image_small.shape[1]
    # Not a blank canvas: the heatmap puts several distinct colours on it.
    assert len(np.unique(image_small.reshape(-1, image_small.shape[-1]), axis=0)) > 10


def test_confusion_matrix_png_without_counts_for_many_labels() -> None:
    k = 35
    y = np.arange(k)
    long_labels = [f"a very long intent name that goes on and on {i}" for i in range(k)]
    image = _decode_png(confusion_matrix_png(evaluate(y, np.eye(k)[y], long_labels)))
    assert image.shape[0] > 1000


def test_markdown_table_single(small: Evaluation) -> None:
    table = markdown_table(small)
    lines = table.strip().splitlines()
    assert lines[0] == "| label | precision | recall | f1 | support |"
    assert "| b | 0.667 | 1.000 | 0.800 | 2 |" in lines
    assert lines[-1].startswith("| **macro** |") and f"{small.macro_f1:.3f}" in lines[-1]
    assert len(lines) == 2 + len(LABELS) + 1


def test_markdown_table_side_by_side(small: Evaluation) -> None:
    champion = evaluate(Y_TRUE, probs_for(Y_TRUE, 3), LABELS)  # perfect
    table = markdown_table(small, champion, names=("new", "old"))
    lines = table.strip().splitlines()
    assert "f1 (new)" in lines[0] and "f1 (old)" in lines[0] and "Δ f1" in lines[0]
    row_b = next(line for line in lines if line.startswith("| b |"))
    cells = [c.strip() for c in row_b.strip("|").split("|")]
    # label, precision new/old, recall new/old, f1 new/old, delta, support
    assert cells == ["b", "0.667", "1.000", "1.000", "1.000", "0.800", "1.000", "-0.200", "2"]
    assert f"{small.macro_f1 - 1.0:+.3f}" in lines[-1]


def test_markdown_table_with_different_label_sets_and_pipes() -> None:
    first = evaluate([0, 1], np.eye(2), ["a|b", "c"])
    second = evaluate([0, 1], np.eye(2), ["c", "d"])
    lines = markdown_table(first, second).strip().splitlines()
    assert any(line.startswith("| a\\|b |") for line in lines)
    row_d = next(line for line in lines if line.startswith("| d |"))
    assert "–" in row_d
