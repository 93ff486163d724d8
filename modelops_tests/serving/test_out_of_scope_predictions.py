"""Every prediction carries the adapter's out-of-scope score and flag: training stores the
model, the predictor, ``modelops predict`` and batch files give it (from the same forward
pass as the probabilities), the production log keeps it, an adapter without the model
still predicts (null fields), and the drift check reads the logged flags."""

from __future__ import annotations

import json
from functools import partial

import numpy as np
import pytest

from modelops.config.recipe import load_recipe
from modelops.demo.generator import DemoKnobs, generate
from modelops.domain.text import clean_text
from modelops.lifecycle import fetch
from modelops.lifecycle.fetch import FetchedAdapter, adapter_features, load_adapter
from modelops.lifecycle.platform import Platform
from modelops.monitoring.check import check_window, window_flags
from modelops.monitoring.out_of_scope import OutOfScopeModel
from modelops.monitoring.reference import load_bundle
from modelops.serving.batch_scoring import score_file
from modelops.serving.model_pool import Scored
from modelops.serving.predictor import Predictor
from modelops.stores.production_log import ProductionLog
from modelops_tests.fixtures.serving import TEXTS, trained_workspace

FAR = "qzxjvkwq zkxvjq"  # random letters: nothing like a request


def far_texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [
        " ".join("".join(rng.choice(list("qzxjvkw"), size)) for size in (8, 6)) for _ in range(n)
    ]


def in_scope_texts(n: int) -> list[str]:
    """Requests like the training rows (the demo generator, another seed)."""
    return generate(DemoKnobs(n=2 * n, seed=99))["text"].tolist()[:n]


@pytest.fixture(scope="module")
def trained(tiny_catalog, tmp_path_factory):
    # 0.1: the tiny workspace has about 20 validation rows, too few for a finite 0.05 rank
    return trained_workspace(
        tmp_path_factory.mktemp("oos"),
        tiny_catalog,
        count=1,
        recipe={"monitoring": {"out_of_scope": {"false_flag_rate": 0.1}}},
    )


@pytest.fixture
def platform(trained):
    p = Platform.from_settings(trained[0])
    yield p
    p.registry.close()


@pytest.fixture
def plog(trained):
    with ProductionLog(trained[0].database_url) as log:
        yield log


def test_training_stores_a_calibrated_model(trained, platform):
    _, champion, _ = trained
    version = platform.registry.get(champion)
    loaded = load_recipe(trained[0].recipes_dir / "demo.yaml")
    with FetchedAdapter(platform, version) as fetched:
        model = load_bundle(fetched.path).out_of_scope
        adapter = load_adapter(platform, fetched)
    assert adapter.out_of_scope is not None
    assert model.false_flag_rate == loaded.recipe.monitoring.out_of_scope.false_flag_rate
    assert model.n_calibration > 0 and model.n_measured > 0
    assert 0 <= model.held_out_flag_rate <= 1
    # the reference is the adapter's own features of its training rows (unit rows)
    assert model.reference.shape[1] == adapter.model.head.in_features
    np.testing.assert_allclose(np.linalg.norm(model.reference, axis=1), 1.0, atol=1e-5)


def test_features_come_from_the_forward_pass_of_the_probabilities(trained, platform):
    _, champion, _ = trained
    with FetchedAdapter(platform, platform.registry.get(champion)) as fetched:
        adapter = load_adapter(platform, fetched)
    texts = [clean_text(t) for t in TEXTS]
    calls = []
    original = adapter.model.encoder.forward

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    adapter.model.encoder.forward = counting
    probs, features = adapter.predict(texts, 32)
    assert len(calls) == 1  # one batch, one pass for both
    np.testing.assert_allclose(probs, adapter.predict_proba(texts, 32), atol=1e-6)
    # the head of those features gives those probabilities
    import torch

    with torch.no_grad():
        logits = adapter.model.head(torch.from_numpy(features))
    np.testing.assert_allclose(torch.softmax(logits, -1).numpy(), probs, atol=1e-6)


def test_a_far_off_text_scores_higher_than_in_scope_ones(platform, trained):
    predictor = Predictor(platform, "demo", log=None)
    model = predictor._loaded.adapter.out_of_scope
    assert np.isfinite(model.threshold)
    near = predictor.score(in_scope_texts(20))
    far = predictor.score(far_texts(20))
    near_scores = np.array([p.oos_score for p in near])
    far_scores = np.array([p.oos_score for p in far])
    assert far_scores.mean() > near_scores.mean() + 0.01
    assert np.median(far_scores) > np.quantile(near_scores, 0.9)
    near_flags = np.array([p.out_of_scope for p in near])
    far_flags = np.array([p.out_of_scope for p in far])
    assert far_flags.mean() >= 0.8 and near_flags.mean() <= 0.3


def test_predict_logs_the_score_and_flag(platform, plog):
    predictor = Predictor(platform, "demo", log=plog)
    before = plog.latest_prediction_id("demo")
    predictions = predictor.predict([*TEXTS, FAR], source="api")
    logged = plog.predictions("demo", after_id=before)
    assert logged["oos_score"].tolist() == pytest.approx([p.oos_score for p in predictions])
    assert logged["out_of_scope"].tolist() == [p.out_of_scope for p in predictions]
    model = predictor._loaded.adapter.out_of_scope
    assert [p.out_of_scope for p in predictions] == [
        p.oos_score > model.threshold for p in predictions
    ]


def test_predict_frame_has_the_columns(platform):
    import pandas as pd

    predictor = Predictor(platform, "demo", log=None)
    out = predictor.predict_frame(pd.DataFrame({"text": [*TEXTS, FAR]}))
    scored = predictor.score([*TEXTS, FAR])
    assert out["oos_score"].tolist() == pytest.approx([p.oos_score for p in scored])
    assert out["out_of_scope"].tolist() == [p.out_of_scope for p in scored]


def test_an_adapter_without_the_model_still_predicts(platform, plog, monkeypatch):
    """Adapters trained before the out-of-scope model: null score and flag, logged so."""
    monkeypatch.setattr(fetch.OutOfScopeModel, "load", classmethod(lambda cls, folder: None))
    predictor = Predictor(platform, "demo", log=plog)
    before = plog.latest_prediction_id("demo")
    predictions = predictor.predict(TEXTS)
    assert [(p.oos_score, p.out_of_scope) for p in predictions] == [(None, None)] * 3
    assert all(p.label in predictor.labels for p in predictions)
    logged = plog.predictions("demo", after_id=before)
    assert logged["oos_score"].isna().all() and logged["out_of_scope"].isna().all()


def test_batch_files_log_the_score_and_count_the_flagged(platform, plog, tmp_path):
    predictor = Predictor(platform, "demo", log=plog)
    path = tmp_path / "batch.csv"
    path.write_text("text\n" + "\n".join([*TEXTS, FAR]) + "\n", encoding="utf-8")
    result = score_file(predictor, path, log=plog)
    logged = plog.predictions("demo", batch_id=result.batch_id)
    assert logged["oos_score"].notna().all()
    assert result.out_of_scope_rows == int(logged["out_of_scope"].sum())
    assert logged["out_of_scope"].tolist() == [
        p.out_of_scope for p in predictor.score([*TEXTS, FAR])
    ]


def test_modelops_predict_prints_the_fields(trained, capsys, monkeypatch):
    from modelops.cli import main
    from modelops_tests.fixtures.processes import workspace_env

    for key, value in workspace_env(trained[0]).items():
        monkeypatch.setenv(key, value)
    assert main(["predict", "--recipe", "demo", "--json", TEXTS[0], FAR]) == 0
    doc = json.loads(capsys.readouterr().out)
    rows = doc["predictions"]
    assert all(isinstance(r["oos_score"], float) for r in rows)
    assert all(isinstance(r["out_of_scope"], bool) for r in rows)
    assert rows[1]["oos_score"] > rows[0]["oos_score"]
    assert main(["predict", "--recipe", "demo", FAR]) == 0
    line = capsys.readouterr().out.splitlines()[0].split("\t")
    assert line[2].startswith("oos ") and float(line[2].split()[1]) == pytest.approx(
        rows[1]["oos_score"], abs=1e-3
    )


def test_window_flags_read_the_log_and_compute_only_the_rest():
    import pandas as pd

    rng = np.random.default_rng(0)
    cluster = np.ones(8)  # every in-scope row points about this way
    model = OutOfScopeModel.fit(
        cluster + 0.1 * rng.normal(size=(50, 8)),
        cluster + 0.1 * rng.normal(size=(40, 8)),
        false_flag_rate=0.1,
        calibration_confidence=rng.uniform(0.8, 1.0, 40),
    )

    class Bundle:
        out_of_scope = model

    window = pd.DataFrame(
        {
            "text": ["a", "b", "c", "d"],
            "out_of_scope": [True, None, False, None],
            "confidence": [0.9, 0.5, 0.9, 0.95],  # the logged confidence takes part (knn_msp)
        }
    )
    asked = []

    def features(texts):
        asked.append(list(texts))
        return np.vstack([-cluster, model.reference[0] * 3])  # far; a training row

    flags, computed = window_flags(Bundle(), window, features)
    assert asked == [["b", "d"]] and computed == 2
    assert flags[0] and not flags[2]
    assert flags[1] and not flags[3]  # the far row is flagged, the in-scope-like one not
    flags, computed = window_flags(Bundle(), window, None)  # no way to score: not flagged
    assert flags.tolist() == [True, False, False, False] and computed == 0

    class Old:
        out_of_scope = None

    assert window_flags(Old(), window, features) == (None, 0)


def test_the_drift_check_uses_the_logged_flags(trained, platform, plog):
    _, champion, _ = trained
    version = platform.registry.get(champion)
    with FetchedAdapter(platform, version) as fetched:
        bundle = load_bundle(fetched.path)
    if bundle is None:
        pytest.skip("this workspace's adapter has too few held-out rows for a drift reference")
    predictor = Predictor(platform, "demo", log=plog)
    before = plog.latest_prediction_id("demo")
    texts = [*TEXTS, FAR] * 10
    predictor.predict(texts)
    window = plog.predictions("demo", after_id=before)
    window["out_of_scope"] = [True] * 10 + [False] * 30  # as logged, whatever a score says

    def no_scoring(_texts):
        raise AssertionError("every row has a logged flag: nothing to score")

    loaded = load_recipe(trained[0].recipes_dir / "demo.yaml")
    base = platform.resolve_base_by_sha256(version.base_model_sha256)
    check = check_window(bundle, window, base=base, recipe=loaded.recipe, features=no_scoring)
    assert check.out_of_scope.tolist() == [True] * 10 + [False] * 30
    assert check.out_of_scope_computed == 0
    assert check.impact.novel_share == pytest.approx(0.25)
    assert check.impact.estimated_accuracy < check.impact.unadjusted_accuracy

    # rows logged without a flag are scored with the champion, as the drift step does it
    logged = plog.predictions("demo", after_id=before)
    window = logged.assign(out_of_scope=[None] * 20 + logged["out_of_scope"].tolist()[20:])
    features = partial(adapter_features, platform, version, max_length=bundle.max_length)
    check = check_window(bundle, window, base=base, recipe=loaded.recipe, features=features)
    assert check.out_of_scope_computed == 20
    assert check.out_of_scope.tolist() == logged["out_of_scope"].tolist()


def test_scored_rows_slice_with_their_scores():
    scored = Scored(np.eye(3), np.array([0.1, 0.9, 0.2]), np.array([False, True, False]))
    part = scored[1:3]
    assert len(part) == 2 and part.oos(0) == (0.9, True) and part.oos(1) == (0.2, False)
    assert Scored(np.eye(3))[0:2].oos(1) == (None, None)
