"""The HTTP API against a real uvicorn server on loopback: the request/response
contract, feedback, the OpenAPI document, health, metrics, limits, bad input (fuzzed
with hypothesis) and bearer-token auth."""

from __future__ import annotations

import json
import time

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelops.domain.text import clean_text
from modelops.serving.auth import check_binding
from modelops.serving.schemas import Limits
from modelops.stores.serving_log import ServingLog
from modelops_tests.fixtures.http_server import (
    reference_out_of_scope,
    reference_probabilities,
    serving,
)
from modelops_tests.fixtures.serving import TEXTS

LIMITS = Limits(max_texts=8, max_chars=300, max_body_bytes=64 * 1024)
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def trained(shared_workspace):
    """``(settings, champion)`` of recipe ``other`` (``conftest.py``)."""
    settings, _, _, other = shared_workspace
    return settings, other


@pytest.fixture(scope="module")
def server(trained):
    with serving(trained[0], recipes=("other",), limits=LIMITS) as (service, url):
        yield service, url


def predict(url, body, **kwargs):
    return httpx.post(f"{url}/v1/recipes/other/predict", json=body, timeout=30, **kwargs)


def test_predict_contract(trained, server):
    settings_, champion = trained
    service, url = server
    response = predict(url, {"texts": TEXTS, "top_k": 2, "ids": ["a", 7, "c"]})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == response.json()["request_id"]
    doc = response.json()
    assert (doc["recipe"], doc["adapter_id"], doc["taxonomy_version"]) == ("other", champion, "v1")
    assert doc["base_model"] == "tiny@r1"
    preds = doc["predictions"]
    assert [p["id"] for p in preds] == ["a", "7", "c"]
    assert len({p["prediction_id"] for p in preds}) == 3
    # the shared base with micro-batching says exactly what the adapter says alone
    probs, labels = reference_probabilities(settings_, champion, [clean_text(t) for t in TEXTS])
    for p, row in zip(preds, probs, strict=True):
        best = np.argsort(-row, kind="stable")[:2]
        assert [t["label"] for t in p["top_k"]] == [labels[i] for i in best]
        assert [t["p"] for t in p["top_k"]] == pytest.approx(row[best].tolist(), abs=1e-5)
        assert (p["label"], p["confidence"]) == (p["top_k"][0]["label"], p["top_k"][0]["p"])
    # every prediction carries the adapter's out-of-scope score and flag
    scores, flags = reference_out_of_scope(settings_, champion, [clean_text(t) for t in TEXTS])
    assert [p["oos_score"] for p in preds] == pytest.approx(scores.tolist(), rel=1e-4, abs=1e-5)
    assert [p["out_of_scope"] for p in preds] == flags.tolist()

    assert service.buffer.flush(30)
    with ServingLog(settings_.database_url) as log:
        logged = log.predictions("other", batch_id=doc["request_id"])
        bases = log.base_models("other")
    assert logged["predicted_label"].tolist() == [p["label"] for p in preds]
    assert logged["external_id"].tolist() == ["a", "7", "c"]
    assert logged["oos_score"].tolist() == [p["oos_score"] for p in preds]
    assert logged["out_of_scope"].tolist() == [p["out_of_scope"] for p in preds]
    assert logged["text"].tolist()[1] == "where is my NEW card?"
    assert {bases[i] for i in logged["id"]} == {"tiny@r1"}


def test_feedback_by_prediction_id_and_by_reference(trained, server):
    settings_, _ = trained
    service, url = server
    preds = predict(url, {"texts": ["card lost", "refund please"], "ids": ["r1", "r2"]}).json()
    pid = preds["predictions"][0]["prediction_id"]
    response = httpx.post(
        f"{url}/v1/recipes/other/feedback",
        json={"feedback": [
            {"prediction_id": pid, "true_label": "card_lost"},
            {"id": "r2", "true_label": "refund_request"},
            {"prediction_id": "nope.0", "true_label": "card_lost"},
        ]},
    )  # fmt: skip
    assert response.status_code == 202 and response.json()["accepted"] == 3
    assert service.buffer.flush(30)
    with ServingLog(settings_.database_url) as log:
        logged = log.predictions("other", batch_id=preds["request_id"])
        feedback = log.feedback("other")
    mine = feedback[feedback["prediction_id"].isin(logged["id"])]
    assert sorted(zip(mine["prediction_id"], mine["true_label"], strict=True)) == [
        (logged["id"].iloc[0], "card_lost"),
        (logged["id"].iloc[1], "refund_request"),
    ]
    assert len(feedback) == len(mine)  # the unknown prediction id stored nothing


def test_openapi_health_adapters_and_metrics(trained, server):
    _, champion = trained
    _, url = server
    doc = httpx.get(f"{url}/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert {"/v1/recipes/{recipe}/predict", "/v1/recipes/{recipe}/feedback", "/v1/adapters",
            "/healthz", "/readyz", "/metrics"} <= set(doc["paths"])  # fmt: skip
    request_schema = doc["components"]["schemas"]["PredictRequest"]
    assert {"texts", "top_k", "ids"} <= set(request_schema["properties"])
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{url}/readyz")
    assert ready.status_code == 200 and ready.json()["routes"] == {"other": champion}
    adapters = httpx.get(f"{url}/v1/adapters").json()
    assert [(a["adapter_id"], a["role"]) for a in adapters["adapters"]] == [(champion, "serving")]
    predict(url, {"texts": ["hello there"]})
    text = httpx.get(f"{url}/metrics").text
    for name in ("modelops_requests_total", "modelops_request_seconds_bucket",
                 "modelops_batch_texts_bucket", "modelops_log_backlog_rows",
                 "modelops_log_dropped_rows_total", "modelops_adapters_loaded 1.0"):  # fmt: skip
        assert name in text


def test_rows_that_fail_their_checks_are_counted_in_the_metrics(server):
    service, url = server
    invalid = lambda: service.metrics.registry.get_sample_value(  # noqa: E731
        "modelops_log_invalid_rows_total"
    )
    before = invalid()
    service.buffer.put([{"kind": "prediction", "recipe": "other"}])  # no fields
    predict(url, {"texts": ["hello again"]})
    deadline = time.monotonic() + 30  # the writer counts once it has taken the batch
    while invalid() == before and time.monotonic() < deadline:
        service.buffer.flush(1)
    assert invalid() == before + 1
    text = httpx.get(f"{url}/metrics").text
    assert f"modelops_log_invalid_rows_total {before + 1:.1f}" in text


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"", 400, None),
        (b"\xff\xfe{}", 400, None),
        (b"{not json", 400, None),
        (b"[1, 2]", 422, None),
        (b"{}", 422, "texts"),
        (b'{"texts": []}', 422, "texts"),
        (b'{"texts": "one string"}', 422, "texts"),
        (b'{"texts": ["ok", 5]}', 422, "texts[1]"),
        (b'{"texts": ["ok", "   "]}', 422, "texts[1]"),
        (b'{"texts": ["a\\u0000b"]}', 422, "texts[0]"),
        (b'{"texts": ["\\ud800"]}', 422, "texts[0]"),
        (b'{"texts": ["ok"], "top_k": "3"}', 422, "top_k"),
        (b'{"texts": ["ok"], "top_k": 0}', 422, "top_k"),
        (b'{"texts": ["ok"], "top_k": 101}', 422, "top_k"),
        (b'{"texts": ["ok"], "extra": 1}', 422, "extra"),
        (b'{"texts": ["a", "b"], "ids": ["x"]}', 422, "ids"),
        (b'{"texts": ["a", "b"], "ids": ["x", "x"]}', 422, "ids[1]"),
        (b'{"texts": ["a", "b"], "ids": [1, "1"]}', 422, "ids[1]"),
        (b'{"texts": ["a"], "ids": [true]}', 422, "ids[0]"),
        (json.dumps({"texts": ["x"] * 9}).encode(), 422, "texts"),
        (json.dumps({"texts": ["x" * 301]}).encode(), 422, "texts[0]"),
        (b'{"texts": ["' + b"x" * 70_000 + b'"]}', 413, None),
    ],
)
def test_bad_predict_requests_name_the_field(server, body, status, field):
    _, url = server
    response = httpx.post(f"{url}/v1/recipes/other/predict", content=body, headers=JSON)
    assert response.status_code == status, response.text
    doc = response.json()
    assert doc["field"] == field and doc["error"] and doc["request_id"]


def test_unknown_recipe_route_and_method(server):
    _, url = server
    missing = httpx.post(f"{url}/v1/recipes/demo/predict", json={"texts": ["x"]})  # not served
    assert missing.status_code == 404 and missing.json()["field"] == "recipe"
    assert httpx.get(f"{url}/nowhere").status_code == 404
    wrong = httpx.get(f"{url}/v1/recipes/other/predict")
    assert wrong.status_code == 405 and wrong.json()["error"]
    bad_feedback = httpx.post(
        f"{url}/v1/recipes/other/feedback",
        json={"feedback": [{"true_label": "x", "prediction_id": "a.0", "id": "b"}]},
    )
    assert bad_feedback.status_code == 422 and bad_feedback.json()["field"] == "feedback[0]"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_texts = st.lists(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40) | st.integers() | st.none(),
    max_size=10,
)
_bodies = st.one_of(
    st.binary(max_size=200),
    _json.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {"texts": _texts},
        optional={
            "top_k": st.integers(-2, 200) | st.text(max_size=3),
            "ids": st.lists(st.text(max_size=5) | st.integers(), max_size=10),
            "feedback": _json,
        },
    ).map(lambda d: json.dumps(d).encode()),  # fmt: skip
    st.fixed_dictionaries(
        {
            "feedback": st.lists(
                st.fixed_dictionaries(
                    {"true_label": st.text(max_size=5) | st.integers()},
                    optional={
                        "prediction_id": st.text(max_size=5),
                        "id": st.text(max_size=5) | st.integers(),
                    },
                ),
                max_size=3,
            )
        }
    ).map(lambda d: json.dumps(d).encode()),  # fmt: skip
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=_bodies, endpoint=st.sampled_from(["predict", "feedback"]))
def test_fuzzed_bodies_get_a_result_or_a_named_4xx(server, body, endpoint):
    _, url = server
    response = httpx.post(
        f"{url}/v1/recipes/other/{endpoint}", content=body, headers=JSON, timeout=30
    )
    assert response.status_code in (200, 202, 400, 413, 422), response.text
    doc = response.json()
    if response.status_code >= 400:
        assert set(doc) == {"error", "field", "request_id"} and "Traceback" not in doc["error"]
    elif endpoint == "predict":
        assert len(doc["predictions"]) == len(json.loads(body)["texts"])


def test_bearer_token(trained, tmp_path):
    with serving(trained[0], recipes=("other",), token="s3cret", buffer_dir=tmp_path / "b") as (
        _,
        url,
    ):
        body = {"texts": ["I lost my card"]}
        assert predict(url, body).status_code == 401
        wrong = predict(url, body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["field"] == "Authorization"
        assert predict(url, body, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert httpx.get(f"{url}/metrics").status_code == 401
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert httpx.get(f"{url}/readyz").status_code == 200


def test_binding_beyond_loopback_needs_a_token():
    check_binding("127.0.0.1", None)
    check_binding("::1", None)
    check_binding("0.0.0.0", "token")
    with pytest.raises(Exception, match="--host: binding to 0.0.0.0 needs a bearer token"):
        check_binding("0.0.0.0", None)
