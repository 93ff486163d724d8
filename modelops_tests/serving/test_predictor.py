"""The predictor on the tiny model: serving adapter loaded once, logged predictions,
redaction, reload when the serving alias moves."""

from __future__ import annotations

import pandas as pd
import pytest

from modelops.config.errors import InputError, NotFoundError
from modelops.lifecycle.platform import Platform
from modelops.serving import predictor as predictor_module
from modelops.serving.predictor import Predictor
from modelops.stores.production_log import ProductionLog, text_sha256
from modelops_tests.fixtures.serving import TEXTS, trained_workspace


@pytest.fixture(scope="module")
def trained(tiny_catalog, tmp_path_factory):
    return trained_workspace(tmp_path_factory.mktemp("predictor"), tiny_catalog)


@pytest.fixture
def platform(trained):
    p = Platform.from_settings(trained[0])
    yield p
    p.registry.close()


@pytest.fixture
def plog(trained):
    with ProductionLog(trained[0].database_url) as log:
        yield log


@pytest.fixture
def fetches(monkeypatch):
    """Counts adapter downloads from the artifact store."""
    calls: list[int] = []
    original = predictor_module.FetchedAdapter

    def counting(platform, version):
        calls.append(version.id)
        return original(platform, version)

    monkeypatch.setattr(predictor_module, "FetchedAdapter", counting)
    return calls


def test_predict_scores_and_logs(trained, platform, plog):
    _, champion, _ = trained
    before = plog.latest_prediction_id("demo")
    predictor = Predictor(platform, "demo", log=plog, top_k=3)
    assert predictor.adapter.id == champion
    predictions = predictor.predict(TEXTS, source="api")
    assert len(predictions) == len(TEXTS)
    for p in predictions:
        assert p.label in predictor.labels
        assert (p.adapter_id, p.taxonomy_version) == (champion, "v1")
        assert [t["label"] for t in p.top_k][0] == p.label
        assert p.confidence == pytest.approx(p.top_k[0]["p"])
        ps = [t["p"] for t in p.top_k]
        assert len(ps) == 3 and ps == sorted(ps, reverse=True)

    logged = plog.predictions("demo", after_id=before)
    assert logged["id"].tolist() == [p.prediction_id for p in predictions]
    assert logged["text"].tolist()[1] == "where is my NEW card?"  # cleaned
    assert logged["predicted_label"].tolist() == [p.label for p in predictions]
    assert logged["adapter_id"].tolist() == [champion] * 3
    assert logged["source"].tolist() == ["api"] * 3
    assert logged["top_k"].tolist()[0] == predictions[0].top_k


def test_probabilities_over_all_labels_sum_to_one(platform):
    predictor = Predictor(platform, "demo", log=None, top_k=100)
    (p,) = predictor.predict(["I lost my card"])
    assert [t["label"] for t in p.top_k] != [] and len(p.top_k) == len(predictor.labels)
    assert sum(t["p"] for t in p.top_k) == pytest.approx(1.0, abs=1e-5)
    assert p.prediction_id is None


def test_redacted_predictions_keep_hash_and_length_only(platform, plog):
    before = plog.latest_prediction_id("demo")
    predictor = Predictor(platform, "demo", log=plog, redact_text=True)
    predictor.predict(TEXTS)
    logged = plog.predictions("demo", after_id=before)
    assert logged["text"].isna().all()
    assert logged["text_sha256"].tolist() == [text_sha256(t) for t in TEXTS]
    assert logged["text_chars"].tolist() == [len(" ".join(t.split())) for t in TEXTS]


def test_predict_frame(platform):
    predictor = Predictor(platform, "demo", log=None)
    frame = pd.DataFrame({"id": [10, 11], "message": TEXTS[:2]})
    out = predictor.predict_frame(frame, text_column="message")
    assert out["id"].tolist() == [10, 11]
    assert out["predicted_label"].tolist() == [p.label for p in predictor.predict(TEXTS[:2])]
    assert set(out["adapter_id"]) == {predictor.adapter.id}
    assert {"confidence", "top_k", "taxonomy_version", "prediction_id"} <= set(out.columns)
    with pytest.raises(InputError, match="column 'text'"):
        predictor.predict_frame(frame)


def test_external_ids_are_logged(platform, plog):
    predictor = Predictor(platform, "demo", log=plog)
    before = plog.latest_prediction_id("demo")
    predictions = predictor.predict(TEXTS, external_ids=["t-1", None, 7])
    logged = plog.predictions("demo", after_id=before)
    assert logged["id"].tolist() == [p.prediction_id for p in predictions]
    assert logged["external_id"].tolist()[0::2] == ["t-1", "7"]
    assert pd.isna(logged["external_id"].iloc[1])

    frame = pd.DataFrame({"ref": ["f-1", "f-2"], "message": TEXTS[:2]})
    out = predictor.predict_frame(frame, text_column="message", id_column="ref")
    logged = plog.predictions("demo", after_id=int(logged["id"].max()))
    assert logged["id"].tolist() == out["prediction_id"].tolist()
    assert logged["external_id"].tolist() == ["f-1", "f-2"]
    with pytest.raises(InputError, match="column 'nope'"):
        predictor.predict_frame(frame, text_column="message", id_column="nope")

    last = plog.latest_prediction_id("demo")
    with pytest.raises(InputError, match="external_ids: has 1 entries for 2 texts"):
        predictor.predict(TEXTS[:2], external_ids=["a"])
    with pytest.raises(InputError, match=r"external_ids\[1\]: has 201 characters \(max 200\)"):
        predictor.predict(TEXTS[:2], external_ids=["a", "b" * 201])
    assert plog.latest_prediction_id("demo") == last


def test_bad_input_names_the_text(platform, plog):
    predictor = Predictor(platform, "demo", log=plog)
    before = plog.latest_prediction_id("demo")
    with pytest.raises(InputError, match=r"texts\[1\]: is empty"):
        predictor.predict(["fine", " \n "])
    with pytest.raises(InputError, match=r"texts\[0\]: must be a string"):
        predictor.predict([3])
    with pytest.raises(InputError, match="not one string"):
        predictor.predict("one text")
    assert predictor.predict([]) == []
    assert plog.latest_prediction_id("demo") == before


def test_adapter_is_fetched_once(platform, fetches):
    predictor = Predictor(platform, "demo", log=None, check_every_s=0)
    for _ in range(3):
        predictor.predict(TEXTS)
    assert predictor.refresh() is False
    assert fetches == [predictor.adapter.id]


def test_no_serving_adapter_is_a_clear_error(platform):
    with pytest.raises(NotFoundError, match="recipe 'nothing' has no serving adapter"):
        Predictor(platform, "nothing", log=None)


def test_reloads_when_the_serving_alias_moves(tiny_catalog, tmp_path, fetches):
    settings, first, second = trained_workspace(tmp_path, tiny_catalog)
    platform = Platform.from_settings(settings)
    now = [0.0]
    with ProductionLog(settings.database_url) as plog:
        predictor = Predictor(platform, "demo", log=plog, check_every_s=60, clock=lambda: now[0])
        assert predictor.predict(TEXTS[:1])[0].adapter_id == first

        platform.registry.promote(second, who="tester", why="better", evidence={}, force=True)
        now[0] = 59.0  # not time to look yet: still the first adapter
        assert predictor.predict(TEXTS[:1])[0].adapter_id == first
        now[0] = 60.0
        assert predictor.predict(TEXTS[:1])[0].adapter_id == second
        assert predictor.adapter.id == second

        # refresh() looks at once: a rollback is picked up without waiting.
        platform.registry.rollback("demo", who="tester", why="undo")
        assert predictor.refresh() is True
        assert predictor.predict(TEXTS[:1])[0].adapter_id == first
        assert plog.predictions("demo")["adapter_id"].tolist() == [first, first, second, first]
    assert fetches == [first, second, first]
    platform.registry.close()
