"""The ``gain_worth_cost`` gate of modelops.domain.cost_gate, through ``apply_gates``: the
cost ratio's bound, the gain's bootstrap, and the verdict in words."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modelops.config.gates import CostPolicy, GateSettings
from modelops.domain.bootstrap import paired_bootstrap_macro_f1
from modelops.domain.cost_gate import CostEvidence, InferenceCost, cost_ratio
from modelops.domain.evaluation import evaluate
from modelops.domain.gates import active_gates, apply_gates

LABELS = [f"l{i}" for i in range(5)]
N = 400


def predictions(right: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Truth and predictions right on about ``right`` of the rows."""
    rng = np.random.default_rng(seed)
    y = np.arange(N) % len(LABELS)
    wrong = (y + 1 + rng.integers(0, len(LABELS) - 1, N)) % len(LABELS)
    return y, np.where(rng.random(N) < right, y, wrong)


def onehot(pred: np.ndarray) -> np.ndarray:
    return np.eye(len(LABELS))[pred]


def evidence(cand_seconds, champ_seconds, cand_right=0.8, champ_right=0.8) -> CostEvidence:
    y, cand = predictions(cand_right, 1)
    _, champ = predictions(champ_right, 2)
    return CostEvidence(
        candidate=InferenceCost(tuple(cand_seconds), 2_000),
        champion=InferenceCost(tuple(champ_seconds), 1_000),
        y=y,
        candidate_pred=cand,
        champion_pred=champ,
        n_labels=len(LABELS),
        how="test",
    )


def decide(cost: CostEvidence, **policy):
    settings = GateSettings(beat_baseline=False, cost=CostPolicy(**policy))
    candidate = evaluate(cost.y, onehot(cost.candidate_pred), LABELS)
    champion = evaluate(cost.y, onehot(cost.champion_pred), LABELS)
    decision = apply_gates(
        candidate,
        settings=settings.model_copy(update={"max_macro_f1_drop": 1, "max_label_f1_drop": 1}),
        champion=champion,
        cost=cost,
    )
    (check,) = [c for c in decision.checks if c.name == "gain_worth_cost"]
    return decision, check, candidate.macro_f1 - champion.macro_f1


def test_the_cost_ratio_bound_is_the_sign_tests_order_statistic():
    cand = [float(r) for r in range(1, 17)]  # ratios 1..16 against a champion at 1 s
    ratio = cost_ratio(InferenceCost(tuple(cand)), InferenceCost((1.0,) * 16), 0.95)
    assert ratio.ratio == 8.5 and ratio.rounds == 16
    assert ratio.lower_bound == 5.0  # P(Binomial(16, 1/2) <= 4) = 0.038 <= 0.05 < P(<= 5)
    few = cost_ratio(InferenceCost((3.0, 2.0)), InferenceCost((1.0, 1.0)), 0.95)
    assert few.lower_bound == 2.0  # too few rounds for 95 %: the smallest
    with pytest.raises(ValueError, match="positive seconds"):
        cost_ratio(InferenceCost((1.0,)), InferenceCost((0.0,)), 0.95)


def test_a_costlier_candidate_inside_the_noise_is_refused_in_words():
    decision, check, gain = decide(evidence([2.0] * 16, [1.0] * 16, 0.8, 0.8))
    meta = check.metadata
    assert not decision.passed and [c.name for c in decision.failed()] == ["gain_worth_cost"]
    assert meta["costlier"] and meta["cost_ratio"] == 2.0 and meta["memory_ratio"] == 2.0
    assert meta["gain"] == pytest.approx(gain) and meta["gain_lower_bound"] <= 0
    assert meta["required_gain"] == pytest.approx(0.005)
    assert check.description.startswith(
        "inference cost 2.00x the champion's (2 vs 1 s per 32 texts, 95% lower bound 2.00x "
        "over 16 rounds, memory 2.00x), macro_f1 gain "
    )
    assert "inside the noise" in check.description
    assert "needs a gain above the noise (lower bound > 0) and >= 0.0050" in check.description


def test_a_real_gain_below_the_stated_worth_is_refused_and_above_it_passes():
    cost = evidence([8.0] * 16, [1.0] * 16, 0.9, 0.6)  # 3 doublings, a large gain
    passed, check, gain = decide(cost)
    assert gain > 0.015 and check.metadata["gain_lower_bound"] > 0
    assert passed.passed and "worth it" in check.description
    refused, check, _ = decide(cost, min_gain_per_cost_doubling=0.2)
    assert check.metadata["required_gain"] == pytest.approx(0.6)
    assert not refused.passed and "below the 0.6000 the cost asks" in check.description
    assert "inside the noise" not in check.description


def test_accuracy_is_weighed_by_the_paired_bootstrap_of_right_rows():
    cost = evidence([4.0] * 16, [1.0] * 16, 0.9, 0.6)
    _, check, _ = decide(cost, metric="accuracy")
    right = (cost.candidate_pred == cost.y).mean() - (cost.champion_pred == cost.y).mean()
    assert check.metadata["metric"] == "accuracy" and check.metadata["gain"] == pytest.approx(right)


def test_timing_noise_does_not_make_a_same_sized_model_costlier():
    noisy = [1.0] * 11 + [1.6] * 5  # a few slow rounds: median 1x, bound 1x
    decision, check, gain = decide(evidence(noisy, [1.0] * 16, 0.7, 0.8))
    assert gain < 0 and check.passed and check.metadata["costlier"] is False
    assert "not costlier than the champion (bound <= 1.10x)" in check.description
    # 1.6x in 11 rounds of 16 is not yet evidence at 95 %; in 12 it is
    _, unsure, _ = decide(evidence([1.6] * 11 + [1.0] * 5, [1.0] * 16, 0.7, 0.8))
    assert unsure.metadata["costlier"] is False and unsure.metadata["cost_ratio"] == 1.6
    _, costlier, _ = decide(evidence([1.6] * 12 + [1.0] * 4, [1.0] * 16, 0.7, 0.8))
    assert costlier.metadata["costlier"] and not costlier.passed


def test_without_a_measurement_it_fails_and_without_a_champion_it_is_skipped():
    y, pred = predictions(0.8, 1)
    ev = evaluate(y, onehot(pred), LABELS)
    unmeasured = apply_gates(
        ev, settings=GateSettings(beat_baseline=False), champion=ev, cost_unmeasured="boom"
    )
    assert [c.description for c in unmeasured.failed()] == ["inference cost not measured: boom"]
    alone = apply_gates(ev, settings=GateSettings(beat_baseline=False))
    assert alone.passed and [c.name for c in alone.skipped()][-1] == "gain_worth_cost"
    gone = apply_gates(
        ev, settings=GateSettings(beat_baseline=False), champion_unavailable="champion 3 lost"
    )
    assert "gain_worth_cost" in [c.name for c in gone.failed()]
    off = GateSettings(beat_baseline=False, weigh_cost=False)
    assert "gain_worth_cost" not in active_gates(off)
    assert "gain_worth_cost" not in [c.name for c in apply_gates(ev, settings=off).checks]


def test_the_macro_f1_bootstrap_matches_the_evaluations():
    y, a = predictions(0.85, 3)
    _, b = predictions(0.8, 4)
    boot = paired_bootstrap_macro_f1(y, a, b, len(LABELS), resamples=400)
    gap = evaluate(y, onehot(a), LABELS).macro_f1 - evaluate(y, onehot(b), LABELS).macro_f1
    assert boot.observed == pytest.approx(gap)
    assert boot.low < boot.lower_bound < boot.observed < boot.high
    assert boot == paired_bootstrap_macro_f1(y, a, b, len(LABELS), resamples=400)
    same = paired_bootstrap_macro_f1(y, a, a, len(LABELS))
    assert same.observed == same.low == same.high == 0.0
    # a label neither the truth nor a model has in a resample does not count as F1 0
    only = np.zeros(10, dtype=int)
    assert paired_bootstrap_macro_f1(only, only, only, 5).observed == 0.0
    assert math.isclose(
        paired_bootstrap_macro_f1(only, only, np.ones(10, dtype=int), 5).observed, 1.0
    )
