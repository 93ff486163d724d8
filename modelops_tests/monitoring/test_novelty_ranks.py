"""The novelty test on ranks (``modelops.monitoring.novelty_ranks``): exactly uniform
p-values when traffic is exchangeable with the calibration rows (continuous and tied
scores), its error rate over many null streams, its power against a small share of
out-of-scope rows, and its state in the accumulated evidence (JSON, restart, bad input).

Scores are seeded draws: in-scope rows ``N(0, 1)``, out-of-scope rows ``N(3, 1)``; the
bin edges come from a separate draw of in-scope rows, as the model's measured rows.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from modelops.config.errors import InputError
from modelops.monitoring import betting, novelty_ranks
from modelops.monitoring.evidence import EvidenceSettings, EvidenceState


def reference(rng, calibration: int = 300, edges: int = 300):
    return novelty_ranks.rank_reference(rng.normal(size=edges), rng.normal(size=calibration))


def p_values(rng, edges, counts, scores, first_id: int = 1, salt: int = 5):
    ids = np.arange(first_id, first_id + len(scores))
    return novelty_ranks.sequential_p_values(
        counts, novelty_ranks.bins_of(edges, scores), novelty_ranks.row_uniforms(ids, salt)
    )


def test_the_reference_counts_every_calibration_row_in_ordered_bins():
    rng = np.random.default_rng(0)
    edges, counts = reference(rng, calibration=250, edges=100)
    assert counts.sum() == 250 and counts.size == edges.size + 1
    assert np.all(np.diff(edges) > 0)
    bins = novelty_ranks.bins_of(edges, [-10.0, 0.0, 10.0])
    assert bins[0] == 0 and bins[2] == edges.size and bins[0] < bins[1] < bins[2]
    with pytest.raises(ValueError, match="no finite scores"):
        novelty_ranks.rank_reference([np.nan], [0.0])


def test_p_values_of_exchangeable_traffic_are_uniform():
    rng = np.random.default_rng(1)
    edges, counts = reference(rng)
    p, after = p_values(rng, edges, counts, rng.normal(size=4000))
    assert after.sum() == counts.sum() + 4000  # every row counted in
    assert stats.kstest(p, "uniform").pvalue > 0.01
    assert p.min() > 0.0 and p.max() < 1.0


def test_tied_scores_are_broken_by_the_row_uniforms():
    rng = np.random.default_rng(2)
    edges, counts = novelty_ranks.rank_reference([0.0], np.zeros(50))  # one score for all
    p, _ = p_values(rng, edges, counts, np.zeros(2000))
    assert stats.kstest(p, "uniform").pvalue > 0.01
    again, _ = p_values(rng, edges, counts, np.zeros(2000))
    assert np.array_equal(p, again)  # the same rows get the same p-values
    other, _ = p_values(rng, edges, counts, np.zeros(2000), salt=6)
    assert not np.array_equal(p, other)


def test_row_uniforms_are_deterministic_and_spread():
    u = novelty_ranks.row_uniforms(np.arange(1, 20001), 3)
    assert np.array_equal(u, novelty_ranks.row_uniforms(np.arange(1, 20001), 3))
    assert u.min() >= 0.0 and u.max() < 1.0
    assert stats.kstest(u, "uniform").pvalue > 0.01


def test_null_streams_cross_at_most_alpha_and_out_of_scope_rows_are_caught():
    """200 null streams of 1,000 rows at alpha 0.05 (Ville: at most 5 % may ever cross);
    then 10 % of rows out of scope, caught within 600 rows in most streams."""
    alpha, rng = 0.05, np.random.default_rng(3)
    crossed = 0
    for _ in range(200):
        edges, counts = reference(rng)
        p, _ = p_values(rng, edges, counts, rng.normal(size=1000))
        _, path = betting.p_value_update(np.zeros(betting.p_value_bet_count()), p)
        crossed += path.max() >= math.log(1 / alpha)
    assert crossed <= 200 * alpha + 2 * math.sqrt(200 * alpha)  # 10 + 2 sd
    caught = 0
    for _ in range(40):
        edges, counts = reference(rng)
        novel = rng.random(600) < 0.10
        scores = np.where(novel, rng.normal(3.0, 1.0, 600), rng.normal(size=600))
        p, _ = p_values(rng, edges, counts, scores)
        _, path = betting.p_value_update(np.zeros(betting.p_value_bet_count()), p)
        caught += path.max() >= math.log(1 / alpha)
    assert caught >= 30


def settings(fingerprint: str = "ref1") -> EvidenceSettings:
    return EvidenceSettings(
        null_flag_rate=0.05, reference_accuracy=0.9, reference_rows=500,
        novelty_reference=fingerprint,
    )  # fmt: skip


def test_the_evidence_bets_on_ranks_and_keeps_its_counts_in_json():
    rng = np.random.default_rng(4)
    edges, counts = reference(rng)
    scores = np.where(rng.random(400) < 0.3, rng.normal(3.0, 1.0, 400), rng.normal(size=400))
    bins = novelty_ranks.bins_of(edges, scores).astype(float)
    start = EvidenceState.fresh(9, 1, "t0")
    with pytest.raises(InputError, match="rank_counts"):
        start.update(settings(), ids=range(1, 201), at="a", oos_bins=bins[:200])
    half = start.update(settings(), ids=range(1, 201), at="a", oos_bins=bins[:200],
                        rank_counts=counts)  # fmt: skip
    assert half.tests["novelty"].null == 0.5
    assert len(half.tests["novelty"].log_wealth) == betting.p_value_bet_count()
    assert sum(half.novelty_counts) == counts.sum() + 200
    stored = EvidenceState.from_dict(json.loads(json.dumps(half.to_dict())))
    whole = stored.update(settings(), ids=range(201, 401), at="b", oos_bins=bins[200:])
    one_go = start.update(settings(), ids=range(1, 401), at="a", oos_bins=bins,
                          rank_counts=counts)  # fmt: skip
    assert whole.tests["novelty"].log_e == pytest.approx(one_go.tests["novelty"].log_e)
    assert whole.crossed() == ["novelty"] and whole.tests["novelty"].observations == 400
    # flags do not count under a rank reference; unknown bins (NaN) are left out
    more = whole.update(settings(), ids=range(401, 404), at="c",
                        flags=np.ones(3, bool), oos_bins=np.array([np.nan, 0.0, 1.0]))  # fmt: skip
    assert more.tests["novelty"].observations == 402
    restarted = more.update(settings("ref2"), ids=range(404, 405), at="d",
                            oos_bins=np.array([0.0]), rank_counts=counts)  # fmt: skip
    assert "novelty_reference" in restarted.note and restarted.novelty_counts is not None
    assert sum(restarted.novelty_counts) == counts.sum() + 1


def test_a_bin_outside_the_reference_is_refused():
    counts = np.array([3, 4, 5])
    with pytest.raises(ValueError, match="bin outside"):
        novelty_ranks.sequential_p_values(counts, np.array([3]), np.array([0.5]))


def test_evidence_refuses_bins_outside_its_reference_and_keeps_the_state():
    counts = np.array([3, 4, 5])
    start = EvidenceState.fresh(9, 1, "t0").update(
        settings(), ids=[1], at="a", oos_bins=np.array([2.0]), rank_counts=counts
    )
    for bad in ([3.0], [-1.0], [0.5]):
        with pytest.raises(InputError, match="oos_bins"):
            start.update(settings(), ids=[2], at="b", oos_bins=np.array(bad))
    assert start.rows == 1 and sum(start.novelty_counts) == 13  # nothing counted twice
