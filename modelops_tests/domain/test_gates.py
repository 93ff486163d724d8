"""Promotion gates of modelops.domain.gates."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pydantic
import pytest

from modelops.config.gates import GateSettings
from modelops.domain.evaluation import Evaluation, evaluate
from modelops.domain.gates import GateCheck, GateDecision, apply_gates


def evaluated(y_true: list[int], y_pred: list[int], labels: list[str]) -> Evaluation:
    probs = np.full((len(y_pred), len(labels)), 0.1 / (len(labels) - 1))
    probs[np.arange(len(y_pred)), y_pred] = 0.9
    return evaluate(y_true, probs, labels)


LABELS = ["a", "b", "c"]
Y_TRUE = [0] * 10 + [1] * 10 + [2] * 10


@pytest.fixture
def perfect() -> Evaluation:
    return evaluated(Y_TRUE, Y_TRUE, LABELS)


@pytest.fixture
def good() -> Evaluation:
    """Two of label a's examples go to b: macro-F1 about 0.93."""
    y_pred = list(Y_TRUE)
    y_pred[0] = y_pred[1] = 1
    return evaluated(Y_TRUE, y_pred, LABELS)


def gates(**settings) -> GateSettings:
    """Gate settings; the baseline and cost gates off unless asked for (most tests pass no
    baseline and no measured cost; ``test_cost_gate`` has the cost gate's)."""
    return GateSettings(**{"beat_baseline": False, "weigh_cost": False, **settings})


def with_macro_f1(e: Evaluation, value: float) -> Evaluation:
    return dataclasses.replace(e, macro_f1=value)


def check(decision: GateDecision, name: str) -> GateCheck:
    (found,) = [c for c in decision.checks if c.name == name]
    return found


def test_without_champion_the_regression_checks_are_skipped_not_passed(good: Evaluation) -> None:
    baseline = with_macro_f1(good, 0.5)
    decision = apply_gates(
        good,
        settings=GateSettings(),
        baseline=baseline,
        baseline_rows=rows(right=28, probe_right=15),
    )
    assert decision.passed
    assert [c.name for c in decision.checks] == [
        "min_macro_f1",
        "no_regression",
        "no_label_regression",
        "beats_baseline",
        "gain_worth_cost",
    ]
    for name in ("no_regression", "no_label_regression", "gain_worth_cost"):
        skipped = check(decision, name)
        assert skipped.skipped and not skipped.passed and skipped.state == "skipped"
        assert skipped.description == "skipped: no champion to compare against"
    assert [c.name for c in decision.skipped()] == [
        "no_regression",
        "no_label_regression",
        "gain_worth_cost",
    ]
    assert decision.failed() == []
    # the reason given by the caller is the one shown
    why = apply_gates(
        good,
        settings=gates(),
        baseline=baseline,
        champion_skipped="every test label comes from a split rule",
    )
    assert check(why, "no_regression").description.endswith("comes from a split rule")


def test_a_champion_that_cannot_be_compared_fails_the_regression_checks(
    good: Evaluation,
) -> None:
    reason = "champion 3 could not be scored: NotFoundError: base model gone"
    decision = apply_gates(
        good, settings=gates(), baseline=with_macro_f1(good, 0.5), champion_unavailable=reason
    )
    assert not decision.passed
    assert [c.name for c in decision.failed()] == ["no_regression", "no_label_regression"]
    for name in ("no_regression", "no_label_regression"):
        failed = check(decision, name)
        assert not failed.skipped and failed.state == "failed"
        assert failed.description == f"champion not compared: {reason}"
        assert "no champion" not in failed.description
    round_trip = GateDecision.from_dict(json.loads(json.dumps(decision.to_dict())))
    assert round_trip == decision


def test_beat_baseline_without_a_baseline_fails(good: Evaluation) -> None:
    decision = apply_gates(good, settings=GateSettings())
    assert not decision.passed
    assert check(decision, "beats_baseline").description == (
        "beat_baseline is on but no baseline was recorded"
    )


def test_min_macro_f1_pass_and_fail(good: Evaluation) -> None:
    passing = check(apply_gates(good, settings=gates(min_macro_f1=0.5)), "min_macro_f1")
    assert passing.passed
    assert passing.description == f"macro-F1 {good.macro_f1:.3f} >= minimum 0.500"
    assert passing.metadata == {"value": good.macro_f1, "threshold": 0.5}

    decision = apply_gates(good, settings=gates(min_macro_f1=0.99))
    failing = check(decision, "min_macro_f1")
    assert not failing.passed and not decision.passed
    assert failing.description == f"macro-F1 {good.macro_f1:.3f} < minimum 0.990"
    assert decision.failed() == [failing]


def test_no_regression_pass_and_fail(good: Evaluation) -> None:
    champion = with_macro_f1(good, 0.80)
    within = check(
        apply_gates(with_macro_f1(good, 0.79), settings=gates(), champion=champion),
        "no_regression",
    )
    assert within.passed
    assert within.description == "macro-F1 0.790 vs champion 0.800: drop +0.010 <= allowed 0.020"
    assert within.metadata["drop"] == pytest.approx(0.01)
    assert within.metadata["champion"] == 0.80

    beyond = check(
        apply_gates(with_macro_f1(good, 0.75), settings=gates(), champion=champion),
        "no_regression",
    )
    assert not beyond.passed
    assert beyond.description == "macro-F1 0.750 vs champion 0.800: drop +0.050 > allowed 0.020"


def test_drop_exactly_at_the_limit_passes(good: Evaluation) -> None:
    # 0.80 - 0.78 is 0.020000000000000018 in floating point.
    decision = apply_gates(
        with_macro_f1(good, 0.78), settings=gates(), champion=with_macro_f1(good, 0.80)
    )
    assert check(decision, "no_regression").passed


def test_improvement_passes_regression_checks(good: Evaluation, perfect: Evaluation) -> None:
    decision = apply_gates(perfect, settings=gates(), champion=good)
    assert decision.passed
    label_check = check(decision, "no_label_regression")
    assert label_check.metadata["worst"] == []
    assert label_check.metadata["compared"] == 3
    assert "no label's F1 dropped" in label_check.description


def test_label_regression_detected(good: Evaluation, perfect: Evaluation) -> None:
    decision = apply_gates(good, settings=gates(max_macro_f1_drop=0.5), champion=perfect)
    label_check = check(decision, "no_label_regression")
    assert not label_check.passed
    f1_a = good.per_label["a"]["f1"]  # 2 * 8 / (10 + 8)
    assert f1_a == pytest.approx(16 / 18)
    assert label_check.metadata["failing"] == ["a"]
    assert [w["label"] for w in label_check.metadata["worst"]] == ["a", "b"]
    assert label_check.metadata["worst"][0]["drop"] == pytest.approx(1 - 16 / 18)
    assert f"'a' 1.000 -> {f1_a:.3f}" in label_check.description
    assert "1 of 3 labels" in label_check.description

    relaxed = apply_gates(
        good, settings=gates(max_label_f1_drop=0.2, max_macro_f1_drop=0.5), champion=perfect
    )
    assert relaxed.passed
    assert "largest drop 'a' 0.111" in check(relaxed, "no_label_regression").description


def test_single_collapsed_label_caught_while_macro_f1_barely_moves() -> None:
    k, per_label = 100, 20
    labels = [f"intent_{i:03d}" for i in range(k)]
    y_true = [i for i in range(k) for _ in range(per_label)]
    champion = evaluated(y_true, y_true, labels)
    # Every example of intent_000 goes elsewhere, one to each of intent_001 .. intent_020.
    y_pred = list(y_true)
    for j in range(per_label):
        y_pred[j] = j + 1
    candidate = evaluated(y_true, y_pred, labels)
    assert champion.macro_f1 - candidate.macro_f1 < 0.02

    decision = apply_gates(candidate, settings=gates(), champion=champion)
    assert check(decision, "no_regression").passed
    label_check = check(decision, "no_label_regression")
    assert not label_check.passed and not decision.passed
    assert label_check.metadata["failing"] == ["intent_000"]
    assert label_check.metadata["compared"] == k
    worst = label_check.metadata["worst"]
    assert len(worst) == 5
    assert worst[0] == {"label": "intent_000", "value": 0.0, "champion": 1.0, "drop": 1.0}
    assert "'intent_000' 1.000 -> 0.000" in label_check.description
    assert [c.name for c in decision.failed()] == ["no_label_regression"]


def test_labels_below_min_support_are_not_compared() -> None:
    labels = ["big", "rare"]
    y_true = [0] * 20 + [1] * 3
    champion = evaluated(y_true, y_true, labels)
    candidate = evaluated(y_true, [0] * 23, labels)  # "rare" collapses, but has support 3
    decision = apply_gates(
        candidate,
        settings=gates(max_macro_f1_drop=1.0, max_label_f1_drop=0.1),
        champion=champion,
    )
    label_check = check(decision, "no_label_regression")
    assert label_check.passed
    assert label_check.metadata["compared"] == 1
    strict = apply_gates(
        candidate,
        settings=gates(max_macro_f1_drop=1.0, min_label_support=3),
        champion=champion,
    )
    assert check(strict, "no_label_regression").metadata["failing"] == ["rare"]

    nothing = apply_gates(candidate, settings=gates(min_label_support=50), champion=champion)
    nothing_check = check(nothing, "no_label_regression")
    assert nothing_check.passed
    assert nothing_check.description == "no label has support >= 50: nothing compared"


def rows(right: int, probe_right: int, n: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the candidate right on the first ``right`` rows, the probe on the first
    ``probe_right``."""
    return np.arange(n) < right, np.arange(n) < probe_right


def test_beats_baseline_needs_a_margin_beyond_the_noise(good: Evaluation) -> None:
    baseline = with_macro_f1(good, 0.5)
    settings = GateSettings()

    def gate(candidate_rows, **changes) -> GateCheck:
        return check(
            apply_gates(
                good,
                settings=settings.model_copy(update=changes),
                baseline=baseline,
                baseline_rows=candidate_rows,
            ),
            "beats_baseline",
        )

    # identical predictions: a tie fails, however good the macro-F1s look
    tie = gate(rows(28, 28))
    assert not tie.passed
    assert tie.metadata["margin"] == 0.0 and tie.metadata["margin_lower_bound"] == 0.0
    # one row of 30 better: within the noise of 30 rows
    noise = gate(rows(28, 27))
    assert not noise.passed and noise.metadata["margin"] == pytest.approx(1 / 30)
    assert noise.metadata["margin_lower_bound"] <= 0
    # clearly better: the 95 % lower bound of the margin is above zero
    clear = gate(rows(29, 15))
    assert clear.passed and clear.metadata["margin_lower_bound"] > 0
    assert clear.metadata["adapter_only_right"] == 14 and clear.metadata["probe_only_right"] == 0
    # the message says both numbers: the observed margin and its bound, against the margin
    assert f"margin {14 / 30:+.4f}" in clear.description
    lower = clear.metadata["margin_lower_bound"]
    assert f"95% lower bound {lower:+.4f} > required margin +0.0000" in clear.description
    # a required margin above that bound fails the same rows
    strict = gate(rows(29, 15), baseline_margin=round(lower + 0.01, 4))
    assert not strict.passed and " <= required margin " in strict.description
    # worse than the probe fails
    assert not gate(rows(15, 29)).passed


def test_beats_baseline_without_per_row_predictions_fails_and_off_is_no_check(
    good: Evaluation,
) -> None:
    baseline = with_macro_f1(good, 0.95)
    missing = check(apply_gates(good, settings=GateSettings(), baseline=baseline), "beats_baseline")
    assert not missing.passed and "per-row test predictions were not recorded" in (
        missing.description
    )
    # switched off, the gate is no check at all: not a passed one
    disabled = apply_gates(good, settings=gates(beat_baseline=False), baseline=baseline)
    assert disabled.passed
    assert "beats_baseline" not in [c.name for c in disabled.checks]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"n": 31}, "candidate n=30.*champion n=31"),
        ({"labels": ["a", "b", "d"]}, r"champion n=30, 3 labels \[a, b, d\]"),
        ({"labels": ["b", "a", "c"]}, "different order"),
    ],
)
def test_champion_on_another_test_set_is_refused(good: Evaluation, change, match) -> None:
    champion = dataclasses.replace(good, **change)
    with pytest.raises(ValueError, match=match):
        apply_gates(good, settings=gates(), champion=champion)


def test_regression_checks_use_the_rows_the_champion_was_scored_on(
    good: Evaluation, perfect: Evaluation
) -> None:
    """A champion scored on part of the test split (a mapped one, without the rows a split
    rule labelled) is compared with the candidate on those rows only; the minimum still
    holds on the whole split."""
    part = [0] * 10 + [1] * 10  # labels a and b only
    champion = evaluated(part, [0] * 9 + [1] * 11, LABELS)
    on_part = evaluated(part, part, LABELS)
    decision = apply_gates(
        with_macro_f1(good, 0.5),
        settings=gates(min_macro_f1=0.6),
        champion=champion,
        compared=on_part,
    )
    assert not check(decision, "min_macro_f1").passed  # the whole split's 0.5
    assert check(decision, "no_regression").passed
    assert check(decision, "no_regression").metadata["value"] == on_part.macro_f1
    with pytest.raises(ValueError, match="candidate n=30"):
        apply_gates(good, settings=gates(), champion=champion)


def test_champion_with_other_supports_is_refused(good: Evaluation) -> None:
    other = evaluated([0] * 12 + [1] * 8 + [2] * 10, Y_TRUE, LABELS)
    with pytest.raises(ValueError, match="supports differ"):
        apply_gates(good, settings=gates(), champion=other)


def test_decision_round_trip_through_json(good: Evaluation, perfect: Evaluation) -> None:
    decision = apply_gates(
        good,
        settings=gates(min_macro_f1=0.99),
        champion=perfect,
        baseline=with_macro_f1(good, 0.5),
    )
    text = json.dumps(decision.to_dict())
    restored = GateDecision.from_dict(json.loads(text))
    assert restored == decision
    assert not restored.passed
    assert {c.name for c in restored.failed()} == {
        "min_macro_f1",
        "no_regression",
        "no_label_regression",
    }


def test_decision_from_dict_names_missing_field() -> None:
    with pytest.raises(ValueError, match="checks"):
        GateDecision.from_dict({"passed": True})


def test_settings_from_recipe_mapping() -> None:
    settings = GateSettings.model_validate(
        {"min_macro_f1": 0.7, "max_label_f1_drop": 0.2, "beat_baseline": False}
    )
    assert settings.min_macro_f1 == 0.7
    assert settings.max_macro_f1_drop == 0.02
    assert settings.min_label_support == 5
    assert settings.beat_baseline is False


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"min_macro_f1": 1.5}, "min_macro_f1"),
        ({"min_macro_f1": -0.1}, "min_macro_f1"),
        ({"max_macro_f1_drop": -0.01}, "max_macro_f1_drop"),
        ({"max_label_f1_drop": -1}, "max_label_f1_drop"),
        ({"min_label_support": -1}, "min_label_support"),
        ({"min_label_support": 2.5}, "min_label_support"),
        ({"min_f1": 0.5}, "min_f1"),
    ],
)
def test_settings_reject_bad_values_and_unknown_fields(values, field) -> None:
    with pytest.raises(pydantic.ValidationError, match=field):
        GateSettings(**values)
