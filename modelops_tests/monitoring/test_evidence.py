"""Drift decisions on accumulated evidence, in seeded simulations of production streams
(``modelops.monitoring.evidence``): the lifetime error rate on clean streams, a steady
drop below the policy that warns and never retrains, a small novel share caught within
three windows, each row counted once, and a reset when the nulls move.

Streams: windows of 200 rows; per row an out-of-scope flag (rate ``p0`` on in-scope rows,
0.8 on novel ones) and a calibrated probability of being right (Beta with the stream's
mean); the reference accuracy is itself drawn from ``reference_rows`` validation rows
(Binomial), so its own noise is part of every null stream.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from modelops.config.errors import InputError
from modelops.config.monitoring import RetrainingSettings
from modelops.monitoring import betting
from modelops.monitoring.evidence import EvidenceSettings, EvidenceState, signals_e_value
from modelops.monitoring.impact import decide_on_evidence

SIZE = 200
P0 = 0.05
ACCURACY = 0.91


def stream(
    seed: int,
    *,
    windows: int,
    alpha: float = 0.01,
    drop: float = 0.0,
    novel: float = 0.0,
    reference_rows: int = 2000,
    drift_p: float | None = None,
) -> tuple[EvidenceState, dict[str, int]]:
    """One simulated stream; returns the final state and the window each test crossed in.
    ``drift_p``: each window's 6 signal p-values are uniform (None: no drift test)."""
    rng = np.random.default_rng(seed)
    settings = EvidenceSettings(
        alpha=alpha,
        null_flag_rate=P0,
        reference_accuracy=rng.binomial(reference_rows, ACCURACY) / reference_rows,
        reference_rows=reference_rows,
        policy_drop=0.02,
        drift=drift_p is not None,
    )
    state = EvidenceState.fresh(7, 1, "2026-12-01T00:00:00+00:00")
    mean, first = ACCURACY - drop, {}
    for w in range(windows):
        is_novel = rng.random(SIZE) < novel
        flags = np.where(is_novel, rng.random(SIZE) < 0.8, rng.random(SIZE) < P0)
        correct = rng.beta(3 * mean, 3 * (1 - mean), SIZE)
        window_e = None
        if drift_p is not None:  # rank p-values among 1,151 null windows
            p = (1 + rng.integers(0, 1152, 6)) / 1152
            window_e = float(np.mean(betting.p_to_e(p)))
        ids = np.arange(w * SIZE + 1, (w + 1) * SIZE + 1)
        state = state.update(
            settings, ids=ids, at=f"w{w}", flags=flags, correct=correct, window_e=window_e
        )
        for name in state.crossed():
            first.setdefault(name, w + 1)
    return state, first


def test_clean_streams_of_100_windows_alarm_at_most_alpha():
    """The lifetime guarantee: streams that meet every null (flags at p0, accuracy at the
    reference's population value, uniform drift p-values) ever alarm in at most alpha of
    them. alpha = 0.1 here so that a test that broke it would show: 100 streams bound the
    share within 3 standard errors (0.09) of alpha."""
    alpha, streams = 0.1, 100
    alarms = [bool(stream(s, windows=100, alpha=alpha, drift_p=1.0)[1]) for s in range(streams)]
    slack = 3 * math.sqrt(alpha * (1 - alpha) / streams)
    assert sum(alarms) / streams <= alpha + slack


def test_a_steady_drop_below_the_policy_warns_and_never_retrains():
    """A 1.5-point drop under a 2-point policy, 100 windows: ``policy_drop`` never crosses
    (no retraining), ``any_drop`` does in most streams (a warning). The reference is
    measured on 20,000 rows here: its lower bound (0.6 points below at its share of alpha)
    leaves the drop visible; on 2,000 rows (1.8 points) a 1.5-point drop cannot be told
    from the reference's own noise, and it only warned in 6 % of streams."""
    policy = RetrainingSettings()
    actions = []
    for seed in range(40):
        state, first = stream(seed, windows=100, drop=0.015, reference_rows=20_000)
        assert "policy_drop" not in first
        actions.append(decide_on_evidence(state, None, policy).action)
    assert "retrain" not in actions
    assert actions.count("warn") >= 0.8 * len(actions)


def test_a_drop_beyond_the_policy_retrains():
    state, first = stream(3, windows=100, drop=0.08)
    assert "policy_drop" in first and first["policy_drop"] <= 10
    decision = decide_on_evidence(state, None, RetrainingSettings())
    assert decision.retrain and decision.reasons[0].startswith("evidence: policy_drop")


def test_a_five_percent_novel_share_alarms_within_three_windows():
    """5 % of rows novel, flagged at 0.8, p0 = 0.05: the novelty test crosses within 3
    windows of 200 rows in most seeds (61 % in this simulation; the likelihood ratio of
    the true rate, the most any test can, reaches 76 %). Novelty alone warns under
    ``trigger: impact`` and retrains under ``trigger: drift``."""
    caught = []
    for seed in range(200):
        state, first = stream(seed, windows=3, novel=0.05)
        caught.append(first.get("novelty", 99) <= 3)
        assert "policy_drop" not in first
    assert sum(caught) / len(caught) > 0.5
    assert decide_on_evidence(state, None, RetrainingSettings()).action in ("ok", "warn")
    crossed = next(s for s in range(200) if caught[s])
    state, _ = stream(crossed, windows=3, novel=0.05)
    assert decide_on_evidence(state, None, RetrainingSettings()).action == "warn"
    assert decide_on_evidence(state, None, RetrainingSettings(trigger="drift")).retrain


def test_rows_count_once_and_the_state_round_trips_json():
    settings = EvidenceSettings(null_flag_rate=P0, reference_accuracy=0.9, reference_rows=500)
    rng = np.random.default_rng(0)
    state = EvidenceState.fresh(3, 11, "2026-12-01T00:00:00+00:00")
    flags, correct = rng.random(300) < P0, rng.random(300)
    once = state.update(
        settings, ids=range(11, 211), at="a", flags=flags[:200], correct=correct[:200]
    )
    # An overlapping window: only its 100 rows above last_id count.
    twice = once.update(
        settings, ids=range(111, 311), at="b", flags=flags[100:], correct=correct[100:]
    )
    assert (once.rows, once.last_id, twice.rows, twice.last_id) == (200, 210, 300, 310)
    assert twice.tests["novelty"].observations == 300
    assert twice.accuracy["n"] == 300 and state.rows == 0  # update returns a new state
    again = EvidenceState.from_dict(json.loads(json.dumps(twice.to_dict())))
    assert again == twice
    same = twice.update(settings, ids=range(111, 311), at="c", flags=flags[100:], correct=None)
    assert same.rows == 300 and same.tests["novelty"].log_e == twice.tests["novelty"].log_e


def test_new_settings_restart_the_evidence():
    settings = EvidenceSettings(null_flag_rate=P0, reference_accuracy=0.9, reference_rows=500)
    state = EvidenceState.fresh(3, 1, "2026-12-01T00:00:00+00:00")
    state = state.update(settings, ids=range(1, 201), at="a", flags=np.ones(200, dtype=bool))
    assert state.crossed() == ["novelty"]
    moved = EvidenceSettings(null_flag_rate=P0, reference_accuracy=0.9, reference_rows=500,
                             policy_drop=0.05)  # fmt: skip
    restarted = state.update(moved, ids=range(201, 261), at="b", flags=np.zeros(60, bool))
    assert restarted.crossed() == [] and restarted.rows == 60 and restarted.first_id == 201
    assert "policy_drop" in restarted.note and restarted.since == "b"


def test_the_drift_test_counts_disjoint_windows_only():
    settings = EvidenceSettings(reference_accuracy=0.9, reference_rows=500)
    state = EvidenceState.fresh(3, 1, "t")
    state = state.update(settings, ids=range(1, 61), at="a", window_e=5.0)
    state = state.update(settings, ids=range(31, 91), at="b", window_e=5.0)  # overlaps
    assert state.tests["drift"].observations == 1 and state.drift_last_id == 60
    state = state.update(settings, ids=range(91, 151), at="c", window_e=5.0)
    assert state.tests["drift"].observations == 2


def test_the_confidence_sequence_covers_the_mean():
    """Over 200 streams of 20 windows, the 1 - alpha sequence covers the true mean at the
    end in at least 1 - alpha of them (within simulation error)."""
    alpha, misses = 0.1, 0
    for seed in range(200):
        state, _ = stream(seed, windows=20, alpha=alpha)
        _, low, high = state.estimate()
        misses += not low <= ACCURACY <= high
    assert misses / 200 <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / 200)


def test_p_to_e_is_an_e_value_and_signals_average():
    """The calibrator integrates to 1 over [0, 1]: its antiderivative is (p - 1) / ln p,
    0 at 0 and 1 at 1; checked numerically on [low, 1] against that closed form."""
    from scipy.integrate import quad

    for low in (1e-9, 1e-3, 0.2):
        area, _ = quad(lambda p: float(betting.p_to_e(p)), low, 1.0, limit=200)
        assert area == pytest.approx(1.0 - (low - 1.0) / math.log(low), abs=1e-6)
    assert betting.p_to_e(1.0) == pytest.approx(0.5)
    null = {"a": list(range(100)), "b": list(range(100))}
    e, p_values = signals_e_value({"a": 1000.0, "b": -1.0, "c": 5.0}, null, ["a", "b", "c"])
    assert p_values == {"a": 1 / 101, "b": 1.0}
    assert e == pytest.approx((betting.p_to_e(1 / 101) + 0.5) / 2)
    assert signals_e_value({}, null, ["a"]) == (None, {})


def test_bad_input_names_the_field():
    with pytest.raises(InputError, match="alpha"):
        EvidenceSettings(alpha=0.7)
    with pytest.raises(InputError, match="null_flag_rate"):
        EvidenceSettings(null_flag_rate=1.5)
    state = EvidenceState.fresh(1, 1, "t")
    with pytest.raises(InputError, match="flags"):
        state.update(EvidenceSettings(null_flag_rate=0.1), ids=[1, 2], at="a", flags=[1])
    with pytest.raises(InputError, match="state"):
        EvidenceState.from_dict({"adapter_id": 1})
    with pytest.raises(InputError, match="window_e"):
        state.update(EvidenceSettings(), ids=[1, 2], at="a", window_e=-1.0)
    unknown = state.update(
        EvidenceSettings(null_flag_rate=0.1), ids=[1, 2, 3], at="a", flags=[True, None, False]
    )
    assert unknown.tests["novelty"].observations == 2 and unknown.rows == 3
