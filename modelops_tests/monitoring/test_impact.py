"""Severity before action: the accuracy a window costs, with intervals, and the recipe's
retraining policy over the verdict and that impact."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modelops.config.monitoring import RetrainingSettings
from modelops.monitoring.estimate import ConfidenceCalibrator
from modelops.monitoring.impact import Impact, assess, decide_retraining, wilson
from modelops.monitoring.verdict import Verdict


def _verdict(drifted: bool, fired=("confidence",)) -> Verdict:
    fired = list(fired) if drifted else []
    return Verdict(drifted, fired, {"confidence": 0.5}, {"confidence": 0.3}, 0.8, "r")


def _impact(est_drop=0.0, measured_drop=None, labelled=0, low=None, new=()) -> Impact:
    impact = Impact(
        0.9,
        0.9 - est_drop,
        (0.85, 0.95),
        0.9,
        est_drop,
        (est_drop - 0.03, est_drop + 0.03),
        new_labels=list(new),
    )
    if measured_drop is not None:
        impact.labelled_rows = labelled
        impact.measured_accuracy = 0.9 - measured_drop
        impact.measured_drop = measured_drop
        impact.measured_drop_interval = (
            measured_drop - 0.05 if low is None else low,
            measured_drop + 0.05,
        )
    return impact


@pytest.mark.parametrize(
    ("drifted", "impact", "policy", "action"),
    [
        # movement alone: warn, no run
        (True, _impact(est_drop=0.005), {}, "warn"),
        # drift and an estimated drop of at least 2 points
        (True, _impact(est_drop=0.04), {}, "retrain"),
        # the same drop without drift: the estimate alone does not act
        (False, _impact(est_drop=0.04), {}, "ok"),
        # a measured drop on enough labelled rows, interval above 0, with or without drift
        (False, _impact(measured_drop=0.10, labelled=120), {}, "retrain"),
        # ... too few labelled rows
        (False, _impact(measured_drop=0.10, labelled=10), {}, "ok"),
        # ... interval reaching 0
        (True, _impact(measured_drop=0.03, labelled=120, low=-0.01), {}, "warn"),
        # ... the measured trigger switched off
        (False, _impact(measured_drop=0.10, labelled=120), {"min_measured_drop": None}, "ok"),
        # new labels seen in feedback
        (False, _impact(new=("gift_card",)), {}, "retrain"),
        (True, _impact(new=("gift_card",)), {"on_new_labels": False}, "warn"),
        # trigger: drift retrains on any drift, as before the policy
        (True, _impact(), {"trigger": "drift"}, "retrain"),
        (False, _impact(new=("gift_card",)), {"trigger": "drift"}, "ok"),
        (False, _impact(), {}, "ok"),
    ],
)
def test_retraining_policy(drifted, impact, policy, action):
    decision = decide_retraining(_verdict(drifted), impact, RetrainingSettings(**policy))
    assert decision.action == action, decision.sentence
    assert decision.retrain == (action == "retrain")
    assert decision.sentence.startswith({"retrain": "Retrain", "warn": "Warn", "ok": "No"}[action])


def test_estimated_accuracy_floor_counts_as_impact():
    verdict = _verdict(True, fired=("estimated_accuracy",))
    decision = decide_retraining(verdict, _impact(est_drop=0.0), RetrainingSettings())
    assert decision.retrain and "min_estimated_accuracy" in decision.sentence


def test_assess_estimates_and_measures_with_intervals():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.3, 1.0, size=4000)
    correct = rng.random(4000) < confidence  # a calibrated model: P(right) = confidence
    calibrator = ConfidenceCalibrator().fit(confidence, correct)
    assert calibrator.fitted_accuracy == pytest.approx(0.65, abs=0.02)
    # A window of harder inputs: lower confidence, lower accuracy.
    window_conf = rng.uniform(0.2, 0.7, size=400)
    truth = ["a"] * 400
    right = rng.random(400) < window_conf
    predicted = ["a" if r else "b" for r in right]
    labels = [t if i % 2 == 0 else None for i, t in enumerate(truth)]  # feedback on half
    impact = assess(
        calibrator,
        window_conf,
        predicted=predicted,
        labels=labels,
        known_labels={"a", "b"},
        confidence=0.9,
    )
    low, high = impact.estimated_interval
    assert low < impact.estimated_accuracy < high
    assert low <= 0.45 + 0.06 and high >= 0.45 - 0.06  # the true mean accuracy is 0.45
    drop = calibrator.fitted_accuracy - impact.estimated_accuracy
    assert impact.estimated_drop == pytest.approx(drop)
    assert impact.estimated_drop_interval[0] > 0.1  # clearly hurt
    assert impact.labelled_rows == 200
    measured = np.mean([p == t for p, t in zip(predicted[::2], truth[::2], strict=True)])
    assert impact.measured_accuracy == pytest.approx(measured)
    lo, hi = impact.measured_interval
    assert lo < measured < hi
    assert impact.measured_drop_interval[0] > 0 and impact.new_labels == []
    assert json.loads(json.dumps(impact.to_dict()))["labelled_rows"] == 200
    fresh = assess(
        calibrator,
        window_conf,
        predicted=predicted,
        labels=["new"] + [None] * 399,
        known_labels={"a", "b"},
    )
    assert fresh.new_labels == ["new"] and fresh.labelled_rows == 1
    blind = assess(calibrator, window_conf, predicted=predicted, labels=None, known_labels=set())
    assert blind.measured_accuracy is None and blind.labelled_rows == 0


def test_wilson_interval():
    lo, hi = wilson(90, 100, 0.95)
    assert lo == pytest.approx(0.8256, abs=1e-3) and hi == pytest.approx(0.9448, abs=1e-3)
    assert wilson(0, 0, 0.9) == (0.0, 1.0)


def test_flagged_rows_count_as_likely_errors_with_an_interval():
    """Flagged rows beyond the in-scope flag rate count wrong; the in-scope share of the
    flagged rows counts at the held-out flagged accuracy; the interval spans the novel
    share's uncertainty."""
    calibrator = ConfidenceCalibrator().fit(np.linspace(0, 1, 200), np.arange(200) >= 20)
    confident = np.full(200, 0.95)  # confidently wrong on the novel rows: the plain estimate
    flags = np.zeros(200, bool)
    flags[:50] = True  # 25 % flagged, 5 % expected by chance
    rate, flagged_accuracy = 0.05, 0.6

    def run(novel, **kwargs):
        return assess(
            calibrator,
            confident,
            predicted=["a"] * 200,
            labels=None,
            known_labels=set(),
            novel=novel,
            novel_by_chance=rate,
            **kwargs,
        )

    impact = run(flags, flagged_accuracy=flagged_accuracy)
    plain = impact.unadjusted_accuracy
    p = float(calibrator.predict(np.array([0.95]))[0])
    novel = (0.25 - rate) / (1 - rate)
    in_scope_flagged = rate * (1 - novel) * 200
    expected = (150 * p + in_scope_flagged * flagged_accuracy) / 200
    assert impact.novel_share == pytest.approx(0.25)
    assert impact.novel_share_estimate == pytest.approx(novel)
    low, high = impact.novel_share_interval
    assert low < novel < high
    assert impact.estimated_accuracy == pytest.approx(expected)
    assert impact.estimated_accuracy < plain - 0.15
    assert impact.estimated_drop == pytest.approx(
        calibrator.fitted_accuracy - impact.estimated_accuracy
    )
    # the interval is wider than the Bernoulli spread alone: it covers the novel share
    bernoulli = (
        1.645
        * np.sqrt(150 * p * (1 - p) + in_scope_flagged * flagged_accuracy * (1 - flagged_accuracy))
        / 200
    )
    lo, hi = impact.estimated_interval
    assert lo < impact.estimated_accuracy - bernoulli - 1e-4
    assert hi > impact.estimated_accuracy + bernoulli + 1e-4
    drop_lo, drop_hi = impact.estimated_drop_interval
    assert drop_lo < impact.estimated_drop < drop_hi

    # a clean window (flagged share at the rate): no novel share, the flagged rows at the
    # flagged accuracy
    clean = np.zeros(200, bool)
    clean[:10] = True
    at_rate = run(clean, flagged_accuracy=flagged_accuracy)
    assert at_rate.novel_share_estimate == 0.0
    assert at_rate.estimated_accuracy == pytest.approx((190 * p + 10 * flagged_accuracy) / 200)

    unflagged = run(np.zeros(200, bool))
    assert unflagged.estimated_accuracy == unflagged.unadjusted_accuracy == plain


def test_the_band_counts_novel_rows_the_flag_missed():
    """30 % novel rows, only half of them past the flag threshold, all past the band's: the
    band's count finds the novel share the flag alone underestimates, and the estimate
    comes within two points of the truth (the flag alone errs by more than ten)."""
    rng = np.random.default_rng(11)
    calibrator = ConfidenceCalibrator().fit(np.linspace(0, 1, 400), np.arange(400) >= 40)
    n, share, rate, wide_rate = 2000, 0.3, 0.05, 0.1
    novel, u = rng.random(n) < share, rng.random(n)
    in_flag, in_band = u < rate, u < wide_rate  # an in-scope row past the flag is in the band
    flags = in_flag | (novel & (rng.random(n) < 0.5))
    wide = in_band | flags | novel
    confidence = np.full(n, 0.95)  # confidently wrong on the novel rows
    p = float(calibrator.predict(np.array([0.95]))[0])
    truth = (~novel).mean() * p  # in-scope rows right at their calibrated probability

    def run(band):
        return assess(calibrator, confidence, predicted=["a"] * n, labels=None,
                      known_labels=set(), novel=flags, novel_by_chance=rate,
                      flagged_accuracy=p, band=band)  # fmt: skip

    flag_only, banded = run(None), run((wide, wide_rate, p))
    assert flag_only.estimated_accuracy - truth > 0.1
    assert abs(banded.estimated_accuracy - truth) < 0.02
    assert banded.novel_share_estimate == pytest.approx(share, abs=0.03)
    low, high = banded.estimated_interval
    assert low < truth < high
    # a band that adds nothing (every banded row flagged, same rate) changes nothing
    same = run((flags, rate, p))
    assert same.estimated_accuracy == pytest.approx(flag_only.estimated_accuracy)
