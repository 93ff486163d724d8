"""Hot swap: promotions and rollbacks in the registry while a load generator sends
concurrent requests to a real server; every request succeeds, and each response's
labels and confidences are exactly those of the adapter it names."""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import pytest

from modelops.domain.text import clean_text
from modelops.lifecycle.platform import Platform
from modelops.stores.serving_log import ServingLog
from modelops_tests.fixtures.http_server import reference_probabilities, serving
from modelops_tests.fixtures.serving import DIFFERENT, trained_workspace

TEXTS = [
    "I lost my card yesterday",
    "please refund my order",
    "where is my parcel",
    "change my address please",
    "the app crashes when I log in",
    "I was charged twice",
]


@pytest.fixture(scope="module")
def trained(tiny_catalog, tmp_path_factory):
    return trained_workspace(tmp_path_factory.mktemp("swap"), tiny_catalog, second=DIFFERENT)


def test_promote_and_rollback_under_load(trained):
    settings, first, second = trained
    cleaned = [clean_text(t) for t in TEXTS]
    expected = {}
    for adapter_id in (first, second):
        probs, labels = reference_probabilities(settings, adapter_id, cleaned)
        expected[adapter_id] = ([labels[i] for i in probs.argmax(1)], probs.max(1))
    # the two adapters must tell apart on these texts, or mixing them up would go unseen
    assert not np.allclose(expected[first][1], expected[second][1], atol=1e-4)

    with serving(settings, max_wait_s=0.005) as (service, url):
        responses: list[tuple[list[int], dict]] = []
        failures: list[str] = []
        stop = threading.Event()

        def load(worker: int) -> None:
            with httpx.Client(timeout=30) as client:
                i = worker
                while not stop.is_set():
                    picks = [(i + j) % len(TEXTS) for j in range(1 + i % 3)]
                    i += 1
                    try:
                        r = client.post(
                            f"{url}/v1/recipes/demo/predict",
                            json={"texts": [TEXTS[p] for p in picks]},
                        )
                    except httpx.HTTPError as exc:
                        failures.append(repr(exc))
                        continue
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text}")
                    else:
                        responses.append((picks, r.json()))

        def served_by(adapter_id: int, timeout: float = 60) -> None:
            seen = len(responses)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if any(d["adapter_id"] == adapter_id for _, d in responses[seen:]):
                    return
                time.sleep(0.05)
            raise AssertionError(f"adapter {adapter_id} never answered after the alias moved")

        workers = [threading.Thread(target=load, args=(w,)) for w in range(4)]
        for w in workers:
            w.start()
        try:
            platform = Platform.from_settings(settings)
            served_by(first)
            for _ in range(2):
                platform.registry.promote(second, who="t", why="swap", evidence={}, force=True)
                served_by(second)
                platform.registry.rollback("demo", who="t", why="back")
                served_by(first)
            platform.registry.close()
        finally:
            stop.set()
            for w in workers:
                w.join(60)

        assert failures == []
        answered = {d["adapter_id"] for _, d in responses}
        assert answered == {first, second}
        for picks, doc in responses:
            labels, confidences = expected[doc["adapter_id"]]
            got = doc["predictions"]
            assert [p["label"] for p in got] == [labels[i] for i in picks]
            assert [p["confidence"] for p in got] == pytest.approx(
                [confidences[i] for i in picks], abs=1e-5
            )
        # the adapter no route names any more is unloaded once nothing needs it
        deadline = time.monotonic() + 10
        while len(service.pool.loaded()) > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [a.id for a in service.pool.loaded()] == [first]
        assert service.buffer.flush(30)
        with ServingLog(settings.database_url) as log:
            logged = log.predictions("demo")
        assert len(logged) == sum(len(p) for p, _ in responses)
        assert set(logged["adapter_id"]) == {first, second}
