"""The serving API's attack corpus, against a real ``modelops serve`` process on
loopback without a token (the ``make run`` default), with raw HTTP requests: every
header is what an attacker's page or script would send.

Each case asserts what the server answered and that the production log holds exactly
what it held before (plus the rows of the good requests the case sent itself): a
refused request stores nothing, and nothing stored is lost or changed.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from modelops.demo.files import taxonomy_document
from modelops_tests.fixtures.security_api import (
    ServeProcess,
    predictions_of,
    settle,
    snapshot,
    wait_for,
)
from modelops_tests.fixtures.serving import trained_workspace

PREDICT = "/v1/recipes/demo/predict"
FEEDBACK = "/v1/recipes/demo/feedback"
PUBLIC = "serve.example.org"
MAX_BODY = 64 * 1024
LABELS = [label["name"] for label in taxonomy_document("demo", "v1")["labels"]]


@pytest.fixture(scope="module")
def served(tiny_catalog, tmp_path_factory):
    """One ``modelops serve`` for the module: recipe ``demo`` with its champion, a
    request queue of one, a 64 KiB body limit, one public name."""
    root = tmp_path_factory.mktemp("attacks")
    settings, _, _ = trained_workspace(root, tiny_catalog, count=1)
    args = ["--recipe", "demo", "--max-queue", "1", "--max-body-bytes", str(MAX_BODY)]
    args += ["--public-name", PUBLIC]
    with ServeProcess(settings, root / "serve.log", *args) as serve:
        wait_for(lambda: serve.request("GET", "/readyz").status == 200, "the champion loaded")
        yield serve


def _unchanged(serve: ServeProcess, before: dict, marker: str) -> None:
    """The log holds what it held ``before`` plus one settling request's row, no more."""
    rows = settle(serve, "demo", marker)
    after = snapshot(serve.settings.database_url)
    assert after["feedback"] == before["feedback"]
    assert after["predictions"][: len(before["predictions"])] == before["predictions"]
    added = after["predictions"][len(before["predictions"]) :]
    assert [r["id"] for r in added] == [r["id"] for r in rows]  # the settling request's only


JSON_BODY = json.dumps({"texts": ["I lost my card, please block it"]}).encode()
FEEDBACK_BODY = json.dumps({"feedback": [{"id": "x1", "true_label": "card_lost"}]}).encode()


@pytest.mark.parametrize("path", [PREDICT, FEEDBACK])
@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=----x",
        None,
        "application/json; charset=latin-1",
        "application/jsonp",
    ],
)
def test_a_body_that_is_not_json_is_refused_unread(served, path, content_type):
    """What a web page can POST cross-site without a preflight (text/plain, a form)
    writes nothing; the JSON body inside it is never read."""
    before = snapshot(served.settings.database_url)
    body = JSON_BODY if path == PREDICT else FEEDBACK_BODY
    headers = {} if content_type is None else {"Content-Type": content_type}
    answer = served.request("POST", path, body, headers)
    assert answer.status == 415, answer.body
    doc = answer.json()
    assert doc["field"] == "Content-Type" and "application/json" in doc["error"]
    _unchanged(served, before, f"after a {content_type} body")


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:{port}",
        "127.0.0.1.evil.example:{port}",
        "localhost.evil.example",
        "serve.example.org.evil.example",
        "10.0.0.7:{port}",
        "[::2]:{port}",
        "",
        "evil.example/..",
    ],
)
def test_a_rebound_host_is_refused_on_every_route(served, host):
    """DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 sends
    its own name as Host. No route answers it, reports and health included, and the
    good JSON request it sends stores nothing."""
    before = snapshot(served.settings.database_url)
    host = host.format(port=served.port)
    for method, path in [("GET", "/readyz"), ("GET", "/healthz"), ("GET", "/v1/adapters"),
                         ("GET", "/metrics"), ("GET", "/openapi.json"),
                         ("GET", "/reports/demo/adapter-1/window-1-20")]:  # fmt: skip
        answer = served.request(method, path, host=host)
        assert answer.status == 421, (path, answer.body)
        assert b'"champion"' not in answer.body and b"modelops_" not in answer.body
    answer = served.request("POST", PREDICT, JSON_BODY, {"Content-Type": "application/json"},
                            host=host)  # fmt: skip
    assert answer.status == 421 and answer.json()["field"] == "Host"
    _unchanged(served, before, f"after Host {host!r}")


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1:{port}",
        "localhost:{port}",
        "LOCALHOST",
        "[::1]:{port}",
        PUBLIC,
        f"{PUBLIC}:443",
        "127.0.0.1",
    ],  # fmt: skip
)
def test_loopback_and_the_public_name_are_answered(served, host):
    host = host.format(port=served.port)
    answer = served.request("POST", PREDICT, JSON_BODY, {"Content-Type": "application/json"},
                            host=host)  # fmt: skip
    assert answer.status == 200, answer.body
    assert len(answer.json()["predictions"]) == 1


def test_two_clients_with_one_request_id_get_their_own_prediction_ids(served):
    """The client's X-Request-ID is stored beside the server's id, never used as one:
    two clients that send the same one get distinct prediction ids, and feedback on each
    lands on that client's row."""
    url = served.settings.database_url
    before = snapshot(url)
    header = {"X-Request-ID": "order-42"}
    first = served.post_json(PREDICT, {"texts": ["my card was stolen"]}, header)
    second = served.post_json(PREDICT, {"texts": ["I want my money back"]}, header)
    assert first.status == second.status == 200
    ids = [a.json()["predictions"][0]["prediction_id"] for a in (first, second)]
    assert ids[0] != ids[1]
    for answer in (first, second):
        doc = answer.json()
        assert doc["client_request_id"] == "order-42"
        assert answer.headers["x-request-id"] == doc["request_id"] != "order-42"
    items = [{"prediction_id": ids[0], "true_label": "card_lost"},
             {"prediction_id": ids[1], "true_label": "refund_request"}]  # fmt: skip
    feedback = {"feedback": items}
    answer = served.post_json(FEEDBACK, feedback, header)
    assert answer.status == 202 and answer.json()["accepted"] == 2
    rows = [
        wait_for(lambda a=a: predictions_of(url, a.json()["request_id"]), "the predictions")
        for a in (first, second)
    ]
    assert [r[0]["text"] for r in rows] == ["my card was stolen", "I want my money back"]
    assert [r[0]["client_request_id"] for r in rows] == ["order-42", "order-42"]
    assert rows[0][0]["batch_id"] != rows[1][0]["batch_id"]
    settle(served, "demo", "after two clients with one request id")  # feedback written by now
    after = snapshot(url)
    labelled = {
        r["prediction_id"]: r["true_label"] for r in after["feedback"][len(before["feedback"]) :]
    }
    assert labelled == {rows[0][0]["id"]: "card_lost", rows[1][0]["id"]: "refund_request"}
    assert after["predictions"][: len(before["predictions"])] == before["predictions"]


def test_feedback_with_a_label_outside_the_taxonomy_is_refused_whole(served):
    before = snapshot(served.settings.database_url)
    good = served.post_json(PREDICT, {"texts": ["card never came"], "ids": ["fb-1"]})
    assert good.status == 200
    items = [{"id": "fb-1", "true_label": "card_not_arrived"},
             {"id": "fb-1", "true_label": "<script>steer_retraining()</script>"}]  # fmt: skip
    answer = served.post_json(FEEDBACK, {"feedback": items})
    assert answer.status == 422, answer.body
    doc = answer.json()
    assert doc["field"] == "feedback[1].true_label"
    assert "<script>steer_retraining()</script>" in doc["error"] and "v1" in doc["error"]
    assert "card_not_arrived" in LABELS
    settle(served, "demo", "after unknown labels")
    after = snapshot(served.settings.database_url)
    assert after["feedback"] == before["feedback"]  # not even the good item
    assert after["predictions"][: len(before["predictions"])] == before["predictions"]


@pytest.mark.parametrize("chunked", [False, True])
def test_an_oversize_body_is_refused_and_stores_nothing(served, chunked):
    """Over ``--max-body-bytes``, with its length declared or sent in chunks (so the
    server only learns it while reading): 413, nothing stored."""
    before = snapshot(served.settings.database_url)
    texts = ["I lost my card"] * (MAX_BODY // 10)
    body = json.dumps({"texts": texts}).encode()
    assert len(body) > MAX_BODY
    answer = served.request(
        "POST", PREDICT, body, {"Content-Type": "application/json"}, chunked=chunked
    )
    assert answer.status == 413, answer.body
    assert str(MAX_BODY) in answer.json()["error"]
    _unchanged(served, before, f"after an oversize body (chunked: {chunked})")


def _flood(served: ServeProcess, round_: int, n: int = 32) -> list[tuple[list[str], object]]:
    def one(k: int):
        ids = [f"flood-{round_}-{k}-{i}" for i in range(64)]
        texts = [f"where is my parcel number {k} {i}" for i in range(64)]
        return ids, served.post_json(PREDICT, {"texts": texts, "ids": ids})

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_a_flood_gets_503_with_retry_after_and_every_accepted_request_is_stored(served):
    """More requests at once than the queue holds: some are turned away (503, with
    Retry-After, counted in the metrics), every one answered 200 has its rows stored,
    the ones turned away store nothing, and what was stored before is untouched."""
    url = served.settings.database_url
    before = snapshot(url)
    answered = []
    for round_ in range(5):  # a queue of one overflows in the first round, almost surely
        answered += _flood(served, round_)
        if any(a.status == 503 for _, a in answered):
            break
    busy = [a for _, a in answered if a.status == 503]
    ok = [(ids, a) for ids, a in answered if a.status == 200]
    assert busy and ok and len(busy) + len(ok) == len(answered)
    for answer in busy:
        assert int(answer.headers["retry-after"]) >= 1
        assert "busy" in answer.json()["error"]
    for ids, answer in ok:
        rid = answer.json()["request_id"]
        rows = wait_for(lambda rid=rid: len(predictions_of(url, rid)) == 64 and
                        predictions_of(url, rid), f"the rows of {rid}")  # fmt: skip
        assert [r["external_id"] for r in rows] == ids
    after = snapshot(url)
    assert after["predictions"][: len(before["predictions"])] == before["predictions"]
    assert after["feedback"] == before["feedback"]
    stored = {r["external_id"] for r in after["predictions"]}
    refused_ids = {i for ids, a in answered if a.status == 503 for i in ids}
    assert not refused_ids & stored
    metrics = served.request("GET", "/metrics").body.decode()
    line = next(x for x in metrics.splitlines() if x.startswith("modelops_queue_full_total"))
    assert float(line.split()[-1]) == len(busy)
