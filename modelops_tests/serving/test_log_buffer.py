"""The production log behind the server on PostgreSQL while the database goes down:
requests keep succeeding, rows wait on disk (bounded, drops counted) and reach the log
once it is back, also after a restart."""

from __future__ import annotations

import logging
import time

import httpx
import pytest

from modelops.serving.prediction_buffer import LogBuffer
from modelops.stores.db.engine import migrate
from modelops.stores.production_log import text_sha256
from modelops.stores.serving_log import PREDICTION, ServingLog
from modelops_tests.fixtures.database_outage import database_down
from modelops_tests.fixtures.http_server import serving
from modelops_tests.fixtures.serving import trained_workspace


def _row(text: str) -> dict:
    return {
        "kind": PREDICTION, "recipe": "demo", "taxonomy_version": "v1", "adapter_id": 1,
        "base_model": "tiny@r1", "text": text, "text_sha256": text_sha256(text),
        "text_chars": len(text), "predicted_label": "card_lost", "confidence": 0.5,
        "top_k": [{"label": "card_lost", "p": 0.5}], "source": "api", "batch_id": "b",
        "external_id": text, "at": "2026-01-01T00:00:00+00:00",
    }  # fmt: skip


def _until(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


@pytest.mark.postgres
def test_requests_succeed_while_the_database_is_down(pg_url, tiny_catalog, tmp_path):
    settings, champion, _ = trained_workspace(tmp_path, tiny_catalog, count=1, database_url=pg_url)
    with serving(settings) as (service, url):

        def ask(text: str) -> dict:
            r = httpx.post(f"{url}/v1/recipes/demo/predict", json={"texts": [text, text + "!"]})
            assert r.status_code == 200, r.text
            return r.json()

        before = ask("card lost before")
        assert service.buffer.flush(30)
        with database_down(pg_url):
            during = [ask(f"card lost {i}") for i in range(5)]
            assert {d["adapter_id"] for d in during} == {champion}
            _until(lambda: service.buffer.spooled == 10)
            assert len(list(service.buffer.directory.glob("*.jsonl"))) >= 1
            metrics = httpx.get(f"{url}/metrics").text
            assert "modelops_log_spooled_rows 10.0" in metrics
            assert "modelops_log_dropped_rows_total 0.0" in metrics
        assert service.buffer.flush(30)
        assert service.buffer.dropped == 0
        assert list(service.buffer.directory.glob("*.jsonl")) == []
    with ServingLog(pg_url) as log:
        logged = log.predictions("demo")
    sent = [before, *during]
    assert logged["batch_id"].tolist() == [d["request_id"] for d in sent for _ in range(2)]
    assert logged["predicted_label"].tolist() == [
        p["label"] for d in sent for p in d["predictions"]
    ]


@pytest.mark.postgres
def test_a_full_buffer_drops_and_counts_and_a_restart_replays(pg_url, tmp_path):
    migrate(pg_url)  # creates the tables, as modelops init does
    log = ServingLog(pg_url)
    rows = [_row(f"text {i}") for i in range(8)]
    spool = tmp_path / "spool"
    with database_down(pg_url):
        buffer = LogBuffer(spool, log.write, max_spool_rows=5, flush_rows=2, retry_s=0.05)
        buffer.start()
        buffer.put(rows)
        _until(lambda: buffer.spooled + buffer.dropped == 8)
        buffer.stop()
        assert (buffer.spooled, buffer.dropped, buffer.written) == (5, 3, 0)
    restarted = LogBuffer(spool, log.write, retry_s=0.05)
    assert restarted.backlog == 5
    restarted.start()
    assert restarted.flush(30)
    restarted.stop()
    assert restarted.written == 5 and list(spool.glob("*.jsonl")) == []
    logged = log.predictions("demo")
    log.close()
    assert logged["external_id"].tolist() == [f"text {i}" for i in range(5)]  # oldest kept


def test_a_backlog_over_half_of_memory_goes_through_the_spool_in_order(tmp_path, caplog):
    """Rows that come faster than the database takes them wait on disk, not in memory;
    beyond the memory bound they are dropped and counted."""
    migrate(f"sqlite:///{tmp_path / 'log.db'}")
    log = ServingLog(f"sqlite:///{tmp_path / 'log.db'}")
    buffer = LogBuffer(tmp_path / "spool", log.write, max_memory_rows=10, flush_rows=2)
    assert buffer.put([_row(f"text {i}") for i in range(12)]) == 2  # before the writer runs
    assert (buffer.backlog, buffer.dropped) == (10, 2)
    with caplog.at_level(logging.INFO, logger="modelops.serving.prediction_buffer"):
        buffer.start()
        assert buffer.flush(30)
        buffer.stop()
    assert "log buffer: spool replayed" in caplog.text  # the backlog went through the disk
    logged = log.predictions("demo")
    log.close()
    assert logged["external_id"].tolist() == [f"text {i}" for i in range(10)]
    assert buffer.written == 10 and list((tmp_path / "spool").glob("*")) == []


def test_a_bad_row_never_blocks_the_buffer(tmp_path):
    """A row the writer refuses (it fails its checks) is dropped there and counted;
    the batch is not retried, the rows after it are written."""
    migrate(f"sqlite:///{tmp_path / 'log.db'}")
    log = ServingLog(f"sqlite:///{tmp_path / 'log.db'}")
    bad = [{**_row("no number"), "adapter_id": "one"}, {"kind": "guess"}, "not a row"]
    buffer = LogBuffer(tmp_path / "spool", log.write, flush_rows=2, retry_s=0.05)
    buffer.start()
    buffer.put([_row("first"), bad[0], _row("second"), *bad[1:], _row("third")])
    assert buffer.flush(30)
    buffer.stop()
    logged = log.predictions("demo")
    log.close()
    assert not buffer.database_down and list((tmp_path / "spool").glob("*")) == []
    assert logged["external_id"].tolist() == ["first", "second", "third"]
    assert buffer.written == 6 and buffer.dropped == 0
