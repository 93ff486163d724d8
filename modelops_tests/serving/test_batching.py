"""The micro-batcher: every request gets back exactly its own rows while many requests
are in flight and merged into shared rounds; a lone request is scored at once, a request
on its way (being read) is waited for and shares the round; a round's texts are scored in
length-sorted chunks with the same results as in one pass."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pytest

from modelops.lifecycle.platform import Platform
from modelops.serving.batching import MicroBatcher, QueueFull
from modelops.serving.model_pool import ModelPool
from modelops.stores.registry_records import SERVING


@dataclass(frozen=True)
class FakeAdapter:
    id: int


class FakePool:
    """Scores each text as (its number, the adapter id): a response can be checked row
    by row against the texts it sent. Records the texts of every scored group."""

    def __init__(self, *adapter_ids: int, gate: threading.Event | None = None):
        self.adapters = {i: FakeAdapter(i) for i in adapter_ids}
        self.groups: list[list[str]] = []
        self.gate = gate
        self.entered = threading.Event()

    def get(self, adapter_id):
        return self.adapters.get(adapter_id)

    def score(self, adapter, texts):
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(30)
        self.groups.append(list(texts))
        return np.array([[float(t.split("#")[1]), float(adapter.id)] for t in texts])

    def unload(self, adapter_id):
        self.adapters.pop(adapter_id, None)


def batcher(pool: FakePool, **kwargs) -> MicroBatcher:
    rounds: list[tuple[int, int]] = []
    b = MicroBatcher(pool, on_batch=lambda texts, jobs: rounds.append((texts, jobs)), **kwargs)
    b.rounds = rounds  # type: ignore[attr-defined]
    for adapter_id in pool.adapters:
        assert b.set_route(f"r{adapter_id}", pool.get(adapter_id))
    b.start()
    return b


def test_concurrent_requests_each_get_their_own_rows():
    pool = FakePool(1, 2)
    b = batcher(pool, max_batch=16, max_wait_s=0.001)
    failures: list[str] = []
    number = iter(range(1_000_000))
    lock = threading.Lock()

    def client(worker: int) -> None:
        for k in range(40):
            with lock:
                texts = [f"w{worker}#{next(number)}" for _ in range(1 + (worker + k) % 5)]
            recipe = "r1" if (worker + k) % 3 else "r2"
            with b.incoming():  # as the HTTP handler does around reading a request
                adapter, future = b.submit(recipe, texts)
            got = future.result(30)
            want = [[float(t.split("#")[1]), float(adapter.id)] for t in texts]
            if adapter.id != (1 if recipe == "r1" else 2) or got.tolist() != want:
                failures.append(f"{recipe} {texts}: {got.tolist()}")

    workers = [threading.Thread(target=client, args=(w,)) for w in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    b.stop()
    assert failures == []
    scored = [t for group in pool.groups for t in group]
    # every text scored once, in rounds that merged requests
    assert len(scored) == len(set(scored)) == sum(texts for texts, _ in b.rounds) == next(number)


def test_a_lone_request_is_scored_without_waiting_for_company():
    pool = FakePool(1)
    b = batcher(pool, max_wait_s=600)  # were it to wait, the result below would time out
    with b.incoming():
        _, future = b.submit("r1", ["a#1"])
    assert future.result(30).tolist() == [[1.0, 1.0]]
    _, future = b.submit("r1", ["a#2"])  # no request announced at all
    assert future.result(30).tolist() == [[2.0, 1.0]]
    b.stop()
    assert b.rounds == [(1, 1), (1, 1)]


def test_a_request_on_its_way_shares_the_round():
    pool = FakePool(1)
    b = batcher(pool, max_wait_s=600)
    arriving = b.incoming()
    arriving.__enter__()  # a second request is being read
    _, first = b.submit("r1", ["a#1", "a#2"])
    _, second = b.submit("r1", ["b#3"])  # ... and now queued
    arriving.__exit__(None, None, None)
    assert first.result(30).tolist() == [[1.0, 1.0], [2.0, 1.0]]
    assert second.result(30).tolist() == [[3.0, 1.0]]
    b.stop()
    assert b.rounds == [(3, 2)]


def test_requests_queued_during_a_pass_share_the_next_round():
    gate = threading.Event()
    pool = FakePool(1, gate=gate)
    b = batcher(pool, max_wait_s=0)
    _, first = b.submit("r1", ["a#1"])
    assert pool.entered.wait(30)  # scored alone; its pass waits for the gate
    later = [b.submit("r1", [f"b#{i}"])[1] for i in range(2, 6)]
    gate.set()
    assert first.result(30).tolist() == [[1.0, 1.0]]
    assert [f.result(30).tolist() for f in later] == [[[float(i), 1.0]] for i in range(2, 6)]
    b.stop()
    assert b.rounds == [(1, 1), (4, 4)]


@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_chunked_scoring_matches_one_pass(shared_workspace, chunk):
    settings, _, _, other = shared_workspace
    platform = Platform.from_settings(settings)
    try:
        version = platform.registry.alias("other", SERVING)
        assert version.id == other
        texts = [("card " * (1 + i % 7) + f"lost {i}").strip() for i in range(23)]
        whole = ModelPool(platform, batch_size=64)
        want = whole.probabilities(whole.load(version), texts)
        chunked = ModelPool(platform, batch_size=chunk)
        got = chunked.probabilities(chunked.load(version), texts)
    finally:
        platform.registry.close()
    assert got.shape == want.shape == (23, want.shape[1])
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_a_full_queue_refuses_the_next_request_and_finishes_the_queued_ones():
    """``max_queue`` requests wait while the worker is busy; the next is refused with
    QueueFull (the HTTP service's 503), and every queued one still gets its rows."""
    gate = threading.Event()
    pool = FakePool(1, gate=gate)
    b = batcher(pool, max_queue=2)
    try:
        _, busy = b.submit("r1", ["t#0"])  # taken by the worker, held at the gate
        assert pool.entered.wait(30)
        queued = [b.submit("r1", [f"t#{i}"])[1] for i in (1, 2)]
        assert b.full() and b.waiting() == 2
        with pytest.raises(QueueFull):
            b.submit("r1", ["t#3"])
        assert b.waiting() == 2  # the refused one left nothing behind
        gate.set()
        for i, future in enumerate([busy, *queued]):
            assert future.result(30).tolist() == [[float(i), 1.0]]
        assert not b.full()
        assert ["t#3"] not in pool.groups and sorted(sum(pool.groups, [])) == ["t#0", "t#1", "t#2"]
    finally:
        gate.set()
        b.stop()
