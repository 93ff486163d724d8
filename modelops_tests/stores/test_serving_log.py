"""The HTTP service's writer: one row builder with the production log (a prediction row
round-trips through ``PredictionRecord.to_json``), and rows that fail their checks
dropped and counted without holding back the good rows of their batch."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from modelops.stores.db.engine import migrate
from modelops.stores.production_log import (
    PredictionRecord,
    ProductionLog,
    prediction_columns,
)
from modelops.stores.serving_log import FEEDBACK, INVALID, PREDICTION, SHADOW, ServingLog

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _record(text: str, **fields) -> PredictionRecord:
    values = dict(
        recipe="demo", taxonomy_version="v1", adapter_id=3, predicted_label="card_lost",
        confidence=0.5, top_k=[{"label": "card_lost", "p": 0.5}, {"label": "x", "p": 0.2}],
        source="api", batch_id="req1", external_id=f"ref {text}", at=AT, base_model="tiny@r1",
    )  # fmt: skip
    values.update(fields)
    return PredictionRecord.for_text(text, **values)


def _row(text: str, **fields) -> dict:
    return {"kind": PREDICTION, **_record(text, **fields).to_json()}


@pytest.fixture
def log(db_url):
    migrate(db_url)
    with ServingLog(db_url) as served:
        yield served


def test_a_buffered_row_is_the_record_it_came_from():
    record = _record("  Card   lost  ", redact=True)
    row = _row("  Card   lost  ", redact=True)
    assert PredictionRecord.from_json(row) == record
    assert prediction_columns(PredictionRecord.from_json(row), AT) == prediction_columns(record, AT)
    assert row["text"] is None and row["text_chars"] == len("Card lost")
    assert row["at"] == AT.isoformat()


def test_both_writers_store_the_same_row(db_url):
    migrate(db_url)
    with ProductionLog(db_url) as plog:
        plog.log_predictions([_record("card lost")])
        direct = plog.predictions("demo").drop(columns="id")
    with ServingLog(db_url) as served:
        assert served.write([_row("card lost")])[PREDICTION] == 1
        both = served.predictions("demo").drop(columns="id")
        bases = list(served.base_models("demo").values())
    assert both.iloc[0].to_dict() == direct.iloc[0].to_dict() == both.iloc[1].to_dict()
    assert bases == ["tiny@r1", "tiny@r1"]


BAD_ROWS = [
    {"kind": "guess", "recipe": "demo"},  # unknown kind
    {"recipe": "demo"},  # no kind
    "not a row",
    {k: v for k, v in _row("no hash").items() if k != "text_sha256"},
    _row("recipe blank", recipe=" "),
    _row("adapter not a number", adapter_id="three"),
    _row("top_k not a ranking", top_k=[{"p": 0.5}]),
    _row("long ref", external_id="x" * 201),
    {**_row("bad time"), "at": "yesterday"},
    {**_row("label a number"), "predicted_label": 7},
    {"kind": FEEDBACK, "recipe": "demo", "true_label": " ", "external_id": "ref card lost"},
    {"kind": FEEDBACK, "recipe": "demo", "true_label": "card_lost"},  # no reference
    {"kind": SHADOW, "recipe": "demo", "candidate_adapter_id": 4},
]


def test_invalid_rows_are_dropped_and_counted_and_the_good_ones_written(log, caplog):
    good = [_row("card lost"), _row("refund please", external_id="r2")]
    feedback = {"kind": FEEDBACK, "recipe": "demo", "true_label": "refund", "external_id": "r2"}
    shadow = {
        "kind": SHADOW, "recipe": "demo", "candidate_adapter_id": 4, "champion_adapter_id": 3,
        "batch_id": "req1", "text_sha256": good[0]["text_sha256"],
        "candidate_label": "x", "candidate_confidence": 0.4,
        "champion_label": "card_lost", "champion_confidence": 0.5,
    }  # fmt: skip
    batch = [BAD_ROWS[0], good[0], *BAD_ROWS[1:], good[1], feedback, shadow]
    with caplog.at_level(logging.WARNING, logger="modelops.stores.serving_log"):
        counts = log.write(batch)
    assert counts == {PREDICTION: 2, FEEDBACK: 1, SHADOW: 1, "feedback_unmatched": 0,
                      INVALID: len(BAD_ROWS)}  # fmt: skip
    assert f"{len(BAD_ROWS)} invalid rows dropped (first: InputError: kind:" in caplog.text
    logged = log.predictions("demo")
    assert logged["external_id"].tolist() == ["ref card lost", "r2"]
    assert logged["top_k"].tolist()[0] == good[0]["top_k"]
    assert log.feedback("demo")["prediction_id"].tolist() == [logged["id"].iloc[1]]
    assert log.shadow_summary("demo", 4)["rows"] == 1
