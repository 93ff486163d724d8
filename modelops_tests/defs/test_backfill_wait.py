"""``modelops backfill --wait`` over many backfills: one query a poll for the backfills
still running, each backfill's status and runs read once it left that list (a backfill
being canceled is read again until it ends), and progress with done/total and an
estimate of the time left."""

from __future__ import annotations

from collections import Counter

from modelops.defs import backfill_wait, webserver


class FakeWebserver:
    """Backfills ``b0``..``b{n-1}``: one leaves the requested list each poll, in order;
    ``canceling`` passes through CANCELING for one read before CANCELED."""

    def __init__(self, n: int, canceling: str):
        self.requested = [f"b{i}" for i in range(n)]
        self.canceling, self.calls = canceling, Counter()
        self.reads: Counter = Counter()

    def call(self, query, variables):
        if query is backfill_wait.REQUESTED_IDS:
            self.calls["list"] += 1
            if self.calls["list"] > 1 and self.requested:
                self.requested.pop(0)  # the first one ended since the last poll
            answer = [{"id": b} for b in self.requested]
            return {"partitionBackfillsOrError": {"results": answer}}
        if query is backfill_wait.BACKFILL_STATUS:
            backfill = variables["id"]
            assert backfill not in self.requested, "read while it was still listed"
            self.reads[backfill] += 1
            if backfill == self.canceling:
                status = "CANCELING" if self.reads[backfill] == 1 else "CANCELED"
            else:
                status = "COMPLETED_SUCCESS"
            runs = [{"runId": f"run-{backfill}", "status": "SUCCESS"}]
            return {"partitionBackfillOrError": {"status": status, "runs": runs}}
        raise AssertionError(query)


def test_one_query_a_poll_and_each_backfill_read_when_it_ends(monkeypatch):
    fake = FakeWebserver(6, canceling="b2")
    monkeypatch.setattr(webserver.GraphQL, "call", lambda self, q, v: fake.call(q, v))
    backfills = [{"id": f"b{i}", "recipe": f"recipe{i}"} for i in range(6)]
    lines: list[str] = []
    backfill_wait.wait_for_backfills(
        webserver.GraphQL("http://x"),
        backfills,
        emit=lines.append,
        poll_seconds=0,
        report_seconds=0,
    )
    statuses = {b["recipe"]: b["status"] for b in backfills}
    assert statuses == {
        f"recipe{i}": "CANCELED" if i == 2 else "COMPLETED_SUCCESS" for i in range(6)
    }
    for backfill in backfills:
        assert backfill["runs"] == [{"run_id": f"run-{backfill['id']}", "status": "SUCCESS"}]
    # Each ended backfill read once; the canceling one twice; the rest stayed in the list.
    assert fake.reads == Counter({f"b{i}": 2 if i == 2 else 1 for i in range(6)})
    assert fake.calls["list"] == 7  # one a poll: 6 leave one by one, then none is left
    assert lines[0].startswith("0 of 6 backfills finished after") and "no estimate" in lines[0]
    assert "waiting for recipe0, recipe1, recipe2, recipe3, recipe4, ..." in lines[0]
    # b2 stays pending while it is being canceled
    assert [int(line.split(" of ")[0]) for line in lines] == [0, 1, 2, 2, 4, 5]
    assert all("s left" in line for line in lines[1:])


def test_progress_estimates_the_time_left_from_the_rate_so_far():
    pending = [{"recipe": "c"}, {"recipe": "d"}]
    line = backfill_wait.progress_line(2, pending, elapsed=100.0)
    assert line == "2 of 4 backfills finished after 100 s, about 100 s left; waiting for c, d"
