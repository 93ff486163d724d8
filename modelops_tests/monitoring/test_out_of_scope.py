"""The out-of-scope model: the k-nearest-neighbour score (``knn_cosine``) and its sum with
the model's doubt (``knn_msp``, the default), the conformal threshold's stated false-flag
rate on in-scope rows (seeded simulation), detection of far-off rows, storage, and the
recipe setting."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from pydantic import ValidationError

from modelops.config.monitoring import MonitoringSettings
from modelops.monitoring.out_of_scope import (
    JSON_FILE,
    OutOfScopeModel,
    conformal_threshold,
    kth_similarity,
    unit,
)

DIM = 16


def mixture(rng, centres, n):
    """Rows around the given cluster centres (an "intent" per centre)."""
    return centres[rng.integers(0, len(centres), n)] + rng.normal(size=(n, DIM))


def test_kth_similarity_is_the_kth_largest_cosine():
    rng = np.random.default_rng(0)
    reference, rows = unit(rng.normal(size=(50, DIM))), unit(rng.normal(size=(7, DIM)))
    dense = np.sort(rows @ reference.T, axis=1)[:, ::-1]
    for k in (1, 3, 50):
        np.testing.assert_allclose(kth_similarity(rows, reference, k), dense[:, k - 1], atol=1e-6)
    # k past the reference: its farthest row
    np.testing.assert_allclose(kth_similarity(rows, reference, 80), dense[:, -1], atol=1e-6)


def test_kth_similarity_in_small_blocks_equals_one_block(monkeypatch):
    from modelops.monitoring import out_of_scope

    rng = np.random.default_rng(1)
    reference, rows = unit(rng.normal(size=(40, DIM))), unit(rng.normal(size=(33, DIM)))
    whole = kth_similarity(rows, reference, 2)
    monkeypatch.setattr(out_of_scope, "BLOCK_VALUES", 40 * 4)  # 4 rows at a time
    np.testing.assert_allclose(kth_similarity(rows, reference, 2), whole, atol=1e-6)


def test_conformal_threshold_rank():
    scores = np.arange(1, 100, dtype=float)  # 99 scores: rank ceil(100 * 0.9) = 90
    assert conformal_threshold(scores, 0.1) == 90.0
    assert conformal_threshold(scores[:8], 0.1) == math.inf  # rank 9 of 8: unreachable


@pytest.mark.parametrize(("rate", "n_cal"), [(0.1, 19), (0.05, 39)])
def test_calibration_holds_the_stated_rate_on_in_scope_rows(rate, n_cal):
    """Seeded simulation: over many draws of the calibration rows, the share of fresh
    in-scope rows flagged averages at most the stated rate (and not far below it: the
    conformal rank is tight, >= rate - 1/(n + 1)). Small calibration sets, where the
    finite-sample correction matters: the plain (1 - rate) quantile flags 13 % and 7.7 %
    here, and fails."""
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(5, DIM)) * 3
    rates = []
    for _ in range(300):
        model = OutOfScopeModel.fit(
            mixture(rng, centres, 400),
            mixture(rng, centres, n_cal),
            method="knn_cosine",
            false_flag_rate=rate,
        )
        rates.append(model.flags(model.scores(mixture(rng, centres, 500))).mean())
    assert_rate_held(rates, rate, n_cal)


def assert_rate_held(rates, rate, n_cal):
    """The flagged shares of many calibration draws average at most ``rate``, and at
    least ``rate - 1/(n_cal + 1)``, within their Monte Carlo error."""
    mean = float(np.mean(rates))
    spread = 3 * np.std(rates) / np.sqrt(len(rates))  # Monte Carlo error of the mean
    assert mean <= rate + spread
    assert mean >= rate - 1 / (n_cal + 1) - spread


def test_rows_of_an_unseen_intent_score_higher_and_are_flagged():
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(6, DIM)) * 3
    seen, unseen = centres[:5], centres[5:]
    model = OutOfScopeModel.fit(
        mixture(rng, seen, 500),
        mixture(rng, seen, 300),
        method="knn_cosine",
        false_flag_rate=0.05,
        k=3,
    )
    in_scope = model.scores(mixture(rng, seen, 400))
    novel = model.scores(mixture(rng, unseen, 100))
    assert novel.mean() > in_scope.mean() + 0.1
    assert model.flags(novel).mean() > 0.9
    assert model.flags(in_scope).mean() < 0.1


def test_measured_flag_rate_and_flagged_accuracy():
    rng = np.random.default_rng(4)
    centres = rng.normal(size=(4, DIM)) * 3
    measure = mixture(rng, centres, 500)
    correct = rng.random(500) < 0.7
    model = OutOfScopeModel.fit(
        mixture(rng, centres, 300),
        mixture(rng, centres, 200),
        method="knn_cosine",
        false_flag_rate=0.1,
        measure_features=measure,
        measure_correct=correct,
    )
    flagged = model.flags(model.scores(measure))
    assert model.n_measured == 500 and model.n_flagged_measured == flagged.sum() > 0
    assert model.held_out_flag_rate == pytest.approx(flagged.mean())
    assert model.flagged_accuracy == pytest.approx(correct[flagged].mean())
    assert model.n_calibration == 200


def test_the_reference_is_a_seeded_sample_past_its_cap():
    rng = np.random.default_rng(5)
    rows, cal = rng.normal(size=(300, DIM)), rng.normal(size=(50, DIM))
    a = OutOfScopeModel.fit(
        rows, cal, method="knn_cosine", false_flag_rate=0.1, max_reference_rows=100, seed=1
    )
    b = OutOfScopeModel.fit(
        rows, cal, method="knn_cosine", false_flag_rate=0.1, max_reference_rows=100, seed=1
    )
    assert a.reference.shape == (100, DIM) and a.reference.dtype == np.float32
    np.testing.assert_array_equal(a.reference, b.reference)
    np.testing.assert_allclose(np.linalg.norm(a.reference, axis=1), 1.0, atol=1e-5)


def test_save_and_load_round_trip(tmp_path):
    rng = np.random.default_rng(6)
    model = OutOfScopeModel.fit(
        rng.normal(size=(80, DIM)),
        rng.normal(size=(40, DIM)),
        method="knn_cosine",
        false_flag_rate=0.1,
        k=2,
    )
    model.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [JSON_FILE, "out_of_scope.safetensors"]
    back = OutOfScopeModel.load(tmp_path)
    np.testing.assert_array_equal(back.reference, model.reference)
    assert back.to_dict() == model.to_dict()
    rows = rng.normal(size=(10, DIM))
    np.testing.assert_array_equal(back.scores(rows), model.scores(rows))
    assert OutOfScopeModel.load(tmp_path / "none") is None


def test_too_few_calibration_rows_flag_nothing_and_store_as_null(tmp_path):
    rng = np.random.default_rng(8)
    model = OutOfScopeModel.fit(
        rng.normal(size=(30, DIM)),
        rng.normal(size=(5, DIM)),
        method="knn_cosine",
        false_flag_rate=0.05,
    )
    assert model.threshold == math.inf
    assert not model.flags(model.scores(rng.normal(size=(20, DIM)) * 50)).any()
    model.save(tmp_path)
    assert OutOfScopeModel.load(tmp_path).threshold == math.inf


def test_bad_inputs_say_what_is_wrong():
    rng = np.random.default_rng(9)
    rows = rng.normal(size=(10, DIM))
    with pytest.raises(ValueError, match="k must be"):
        OutOfScopeModel.fit(rows, rows, method="knn_cosine", false_flag_rate=0.1, k=0)
    with pytest.raises(ValueError, match="unknown method"):
        OutOfScopeModel.fit(rows, rows, false_flag_rate=0.1, method="nope")
    model = OutOfScopeModel.fit(rows, rows, method="knn_cosine", false_flag_rate=0.1)
    with pytest.raises(ValueError, match="dimensions"):
        model.scores(rng.normal(size=(3, DIM + 1)))


def test_the_recipe_setting_is_checked():
    settings = MonitoringSettings(out_of_scope={"false_flag_rate": 0.02, "k": 3})
    assert (settings.out_of_scope.false_flag_rate, settings.out_of_scope.k) == (0.02, 3)
    assert MonitoringSettings().out_of_scope.max_reference_rows == 20_000
    for bad, field in (
        ({"false_flag_rate": 0.7}, "false_flag_rate"),
        ({"k": 0}, "k"),
        ({"max_reference_rows": 1}, "max_reference_rows"),
        ({"rate": 0.1}, "rate"),
    ):
        with pytest.raises(ValidationError, match=f"out_of_scope.{field}"):
            MonitoringSettings(out_of_scope=bad)


def test_a_bad_recipe_setting_names_the_file_and_field(tmp_path):
    from modelops.config.errors import InputError
    from modelops.config.recipe import load_recipe
    from modelops_tests.fixtures.workspace import write_recipe

    path = write_recipe(tmp_path, {"monitoring": {"out_of_scope": {"false_flag_rate": 2}}})
    with pytest.raises(InputError, match=r"demo\.yaml: monitoring\.out_of_scope\.false_flag_rate"):
        load_recipe(path)


def test_the_in_scope_rate_combines_the_conformal_prior_with_the_measurement():
    from modelops.monitoring.out_of_scope import in_scope_rate

    assert in_scope_rate(19, 0.05, None) == pytest.approx(1 / 20)  # rank 19 of 19
    assert in_scope_rate(19, 0.05, (0, 55)) == pytest.approx(1 / 75)
    assert in_scope_rate(19, 0.05, (11, 55)) == pytest.approx(12 / 75)
    assert in_scope_rate(18, 0.05, (5, 55)) == 0.0  # infinite threshold: never flags
    rng = np.random.default_rng(10)
    centres = rng.normal(size=(4, DIM)) * 3
    model = OutOfScopeModel.fit(
        mixture(rng, centres, 200),
        mixture(rng, centres, 99),
        method="knn_cosine",
        false_flag_rate=0.1,
        measure_features=mixture(rng, centres, 300),
    )
    rank = math.ceil(100 * 0.9)
    expected = (100 - rank + model.n_flagged_measured) / (100 + 300)
    assert model.null_rate == model.in_scope_flag_rate == pytest.approx(expected)


def doubt(rng, n, low=0.6):
    """Top probabilities of in-scope rows: mostly sure."""
    return np.clip(rng.beta(8, 1, size=n), low, 1.0)


@pytest.mark.parametrize(("rate", "n_cal"), [(0.1, 19), (0.05, 39)])
def test_knn_msp_calibration_holds_the_stated_rate(rate, n_cal):
    """As for the kNN score: the standardisation comes from the measured rows, not the
    calibration rows, so the conformal rank keeps its guarantee."""
    rng = np.random.default_rng(17)
    centres = rng.normal(size=(5, DIM)) * 3
    rates = []
    for _ in range(200):
        model = OutOfScopeModel.fit(
            mixture(rng, centres, 300),
            mixture(rng, centres, n_cal),
            false_flag_rate=rate,
            calibration_confidence=doubt(rng, n_cal),
            measure_features=mixture(rng, centres, 100),
            measure_confidence=doubt(rng, 100),
        )
        assert model.method == "knn_msp"
        fresh = model.scores(mixture(rng, centres, 400), doubt(rng, 400))
        rates.append(model.flags(fresh).mean())
    assert_rate_held(rates, rate, n_cal)


def test_knn_msp_adds_the_model_doubt_to_the_distance():
    rng = np.random.default_rng(18)
    centres = rng.normal(size=(5, DIM)) * 3
    model = OutOfScopeModel.fit(
        mixture(rng, centres, 300),
        mixture(rng, centres, 100),
        false_flag_rate=0.05,
        calibration_confidence=doubt(rng, 100),
        measure_features=mixture(rng, centres, 100),
        measure_confidence=doubt(rng, 100),
    )
    rows = mixture(rng, centres, 50)
    sure, unsure = model.scores(rows, np.full(50, 0.99)), model.scores(rows, np.full(50, 0.3))
    # same texts, less sure: higher by the standardised doubt, row by row
    step = (0.99 - 0.3) / model.scale["msp_std"]
    np.testing.assert_allclose(unsure - sure, step, rtol=1e-9)
    far = rng.normal(size=(50, DIM)) * 3 + 40  # far from every intent, and unsure
    assert model.flags(model.scores(far, np.full(50, 0.3))).mean() > 0.9
    with pytest.raises(ValueError, match="needs each row's confidence"):
        model.scores(rows)
    with pytest.raises(ValueError, match="confidence has shape"):
        model.scores(rows, np.ones(3))
    with pytest.raises(ValueError, match="needs the rows' confidence"):
        OutOfScopeModel.fit(rows, rows, false_flag_rate=0.1)


def test_knn_msp_round_trip_keeps_its_scale(tmp_path):
    rng = np.random.default_rng(19)
    model = OutOfScopeModel.fit(
        rng.normal(size=(80, DIM)),
        rng.normal(size=(40, DIM)),
        false_flag_rate=0.1,
        calibration_confidence=doubt(rng, 40),
    )
    model.save(tmp_path)
    back = OutOfScopeModel.load(tmp_path)
    assert back.scale == model.scale and back.method == "knn_msp"
    rows, confidence = rng.normal(size=(10, DIM)), doubt(rng, 10)
    np.testing.assert_array_equal(back.scores(rows, confidence), model.scores(rows, confidence))


def test_rows_apart_give_the_rank_reference_and_the_band_and_both_round_trip(tmp_path):
    rng = np.random.default_rng(12)
    centres = rng.normal(size=(4, DIM)) * 3
    measure, correct = mixture(rng, centres, 400), rng.random(400) < 0.8
    model = OutOfScopeModel.fit(
        mixture(rng, centres, 300), mixture(rng, centres, 200), method="knn_cosine",
        false_flag_rate=0.05, measure_features=measure, measure_correct=correct,
    )  # fmt: skip
    scores = model.scores(measure)
    assert model.rank_counts.sum() == 200 and model.rank_edges.size == np.unique(scores).size
    band = model.band
    assert band["threshold"] < model.threshold and 0.05 < band["rate"] < 0.2
    inside = (scores > band["threshold"]) & ~model.flags(scores)
    assert band["accuracy"] == pytest.approx(correct[inside].mean())
    model.save(tmp_path)
    back = OutOfScopeModel.load(tmp_path)
    np.testing.assert_array_equal(back.rank_edges, model.rank_edges)
    np.testing.assert_array_equal(back.rank_counts, model.rank_counts)
    assert back.band == model.band and back.rank_fingerprint == model.rank_fingerprint
    alone = OutOfScopeModel.fit(mixture(rng, centres, 300), mixture(rng, centres, 200),
                                method="knn_cosine", false_flag_rate=0.05)  # fmt: skip
    assert alone.rank_fingerprint is None and alone.band is None


def test_a_damaged_rank_reference_or_band_names_the_file(tmp_path):
    from safetensors.numpy import load_file, save_file

    rng = np.random.default_rng(13)
    centres = rng.normal(size=(4, DIM)) * 3
    model = OutOfScopeModel.fit(
        mixture(rng, centres, 100), mixture(rng, centres, 60), method="knn_cosine",
        false_flag_rate=0.1, measure_features=mixture(rng, centres, 80),
        measure_correct=rng.random(80) < 0.8,
    )  # fmt: skip
    model.save(tmp_path)
    tensors = load_file(str(tmp_path / "out_of_scope.safetensors"))
    save_file({**tensors, "rank_counts": tensors["rank_counts"][:-1]},
              str(tmp_path / "out_of_scope.safetensors"))  # fmt: skip
    with pytest.raises(ValueError, match="out_of_scope.safetensors: rank_edges"):
        OutOfScopeModel.load(tmp_path)
    model.save(tmp_path)
    doc = json.loads((tmp_path / JSON_FILE).read_text())
    (tmp_path / JSON_FILE).write_text(json.dumps({**doc, "band": {"rate": 0.1}}))
    with pytest.raises(ValueError, match="out_of_scope.json: band"):
        OutOfScopeModel.load(tmp_path)
