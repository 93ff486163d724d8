"""The production log on SQLite and PostgreSQL: predictions, feedback, windows, redaction."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pandas as pd
import pytest
import sqlalchemy as sa

from modelops.config.errors import InputError, NotFoundError
from modelops.config.fingerprint import sha256_bytes
from modelops.domain.text import normalize_text
from modelops.stores.db.engine import head_revision, migrate, registry_engine, upgrade
from modelops.stores.production_log import (
    FEEDBACK_COLUMNS,
    PREDICTION_COLUMNS,
    PredictionRecord,
    ProductionLog,
    external_id_text,
    text_sha256,
)
from modelops.stores.registry import Registry
from modelops_tests.fixtures.prediction_rows import record


@pytest.fixture
def plog(db_url):
    migrate(db_url)
    with ProductionLog(db_url) as log:
        yield log


def test_round_trip(plog):
    at = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
    ids = plog.log_predictions(
        [
            record(
                "Refund  my order\n", at=at, batch_id="b1", source="batch:x.csv", external_id="r7"
            ),
            record("Card lost", confidence=0.5, adapter_id=8, taxonomy_version="v2"),
        ]
    )
    assert len(ids) == 2 and ids[0] < ids[1]
    frame = plog.predictions("demo")
    assert list(frame.columns) == PREDICTION_COLUMNS
    assert frame["id"].tolist() == ids
    first, second = frame.iloc[0], frame.iloc[1]
    assert first["text"] == "Refund my order"  # what the model saw: cleaned
    assert first["text_sha256"] == sha256_bytes(b"refund my order")
    assert first["text_chars"] == len("Refund my order")
    assert first["at"] == at
    assert (first["source"], first["batch_id"], first["external_id"]) == ("batch:x.csv", "b1", "r7")
    assert first["top_k"] == [{"label": "refund", "p": 0.75}, {"label": "other", "p": 0.25}]
    assert (second["adapter_id"], second["taxonomy_version"]) == (8, "v2")
    assert second["confidence"] == pytest.approx(0.5)
    assert second["at"].tzinfo is not None and pd.isna(second["batch_id"])
    assert pd.isna(second["external_id"])
    assert plog.log_predictions([]) == []


def test_empty_reads_have_the_columns(plog):
    assert list(plog.predictions("demo").columns) == PREDICTION_COLUMNS
    assert list(plog.feedback("demo").columns) == FEEDBACK_COLUMNS
    assert plog.latest_prediction_id("demo") == 0
    assert plog.count_since("demo", 0) == 0
    assert plog.feedback_count("demo") == 0


def test_windows_by_id(plog):
    ids = plog.log_predictions([record(f"text number {i}") for i in range(5)])
    other = plog.log_predictions([record("elsewhere", recipe="other")])
    assert plog.latest_prediction_id("demo") == ids[-1]
    assert plog.latest_prediction_id("other") == other[0]
    assert plog.count_since("demo", 0) == 5
    assert plog.count_since("demo", ids[1]) == 3
    assert plog.count_since("demo", ids[-1]) == 0
    assert plog.predictions("demo", after_id=ids[1])["id"].tolist() == ids[2:]
    assert plog.predictions("demo", limit=2)["id"].tolist() == ids[:2]
    assert plog.predictions("demo", limit=2, newest=True)["id"].tolist() == ids[3:]
    assert plog.predictions("demo", after_id=ids[0], limit=3, newest=True)["id"].tolist() == ids[2:]
    assert plog.predictions("other")["text"].tolist() == ["elsewhere"]


def test_feedback_links_by_text_and_by_id(plog):
    ids = plog.log_predictions(
        [record("Where is my card?"), record("Refund please"), record("where is  MY card?")]
    )
    by_text = plog.add_feedback(
        "demo", true_label="card_not_arrived", text="WHERE is my card?", source="support"
    )
    by_id = plog.add_feedback(
        "demo", true_label="refund_request", prediction_id=ids[1], source="crm"
    )
    unknown = plog.add_feedback("demo", true_label="other", text="never predicted", source="crm")
    frame = plog.feedback("demo")
    assert list(frame.columns) == FEEDBACK_COLUMNS
    assert frame["id"].tolist() == [by_text, by_id, unknown]
    # Same normalized text: linked to the newest prediction of it.
    assert frame["prediction_id"].tolist()[:2] == [ids[2], ids[1]]
    assert frame["prediction_id"].isna().tolist() == [False, False, True]
    # The feedback by id has no text of its own: it comes from the prediction.
    assert frame["text"].tolist() == ["WHERE is my card?", "Refund please", "never predicted"]
    assert frame["text_sha256"].tolist()[1] == text_sha256("refund please")
    assert frame["predicted_label"].tolist()[:2] == ["where", "refund"]
    assert frame["true_label"].tolist() == ["card_not_arrived", "refund_request", "other"]
    assert plog.feedback_count("demo") == 3
    assert plog.feedback_count("demo", after_id=by_text) == 2
    assert plog.feedback("demo", after_id=by_id)["id"].tolist() == [unknown]
    assert plog.feedback_count("other") == 0


def test_feedback_errors(plog):
    (pid,) = plog.log_predictions([record("Refund please")])
    with pytest.raises(InputError, match="prediction_id or a text"):
        plog.add_feedback("demo", true_label="x", source="crm")
    with pytest.raises(NotFoundError, match=f"prediction {pid + 1} "):
        plog.add_feedback("demo", true_label="x", prediction_id=pid + 1, source="crm")
    with pytest.raises(NotFoundError, match="recipe 'other'"):
        plog.add_feedback("other", true_label="x", prediction_id=pid, source="crm")
    with pytest.raises(InputError, match="not the text of prediction"):
        plog.add_feedback("demo", true_label="x", prediction_id=pid, text="other", source="crm")
    with pytest.raises(InputError, match="true_label"):
        plog.add_feedback("demo", true_label=" ", prediction_id=pid, source="crm")
    # Same text, other spacing and case: accepted.
    plog.add_feedback("demo", true_label="x", prediction_id=pid, text="REFUND  please", source="c")
    assert plog.feedback_count("demo") == 1


def test_true_labels_become_feedback_in_the_same_transaction(plog):
    ids = plog.log_predictions(
        [record("Card lost", true_label="card_lost"), record("Refund please")],
    )
    frame = plog.feedback("demo")
    assert frame["prediction_id"].tolist() == [ids[0]]
    assert frame["true_label"].tolist() == ["card_lost"]
    assert frame["text"].tolist() == ["Card lost"]

    # One bad record: nothing of the call is logged.
    with pytest.raises(InputError, match="true_label"):
        plog.log_predictions([record("fine text"), record("bad label", true_label="")])
    broken = replace(record("no hash"), text_sha256=None)  # the database refuses it (NOT NULL)
    with pytest.raises(sa.exc.IntegrityError):
        plog.log_predictions([record("fine text", true_label="x"), broken])
    assert plog.count_since("demo", ids[-1]) == 0
    assert plog.feedback_count("demo") == 1


def test_redacted_text_is_not_stored(plog, db_url):
    secret = "my account number is 12345678"
    ids = plog.log_predictions([record(secret, redact=True, true_label="account")])
    plog.add_feedback("demo", true_label="account", prediction_id=ids[0], source="crm")
    frame = plog.predictions("demo")
    assert frame["text"].tolist() == [None]
    assert frame["text_sha256"].tolist() == [sha256_bytes(normalize_text(secret).encode())]
    assert frame["text_chars"].tolist() == [len(secret)]
    assert plog.feedback("demo")["text"].isna().all()
    # Linking by text still works through the hash.
    plog.add_feedback("demo", true_label="account", text=secret, source="crm")
    assert plog.feedback("demo")["prediction_id"].tolist() == [ids[0]] * 3
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            stored = [
                *conn.execute(sa.text("SELECT text FROM predictions")).scalars(),
                *conn.execute(sa.text("SELECT text FROM feedback")).scalars(),
            ]
    finally:
        engine.dispose()
    # The one text the caller handed to add_feedback is stored; nothing logged by
    # the redacting predictor path is.
    assert stored == [None, None, None, secret]


def test_log_and_registry_share_one_database(db_url):
    migrate(db_url)
    with Registry(db_url) as registry, ProductionLog(db_url) as plog:
        assert registry.list() == []
        plog.log_predictions([record("card lost")])
        with registry._engine.connect() as conn:
            version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
            tables = set(sa.inspect(conn).get_table_names())
        assert {"predictions", "feedback", "adapter_versions"} <= tables
        assert version == head_revision()  # test_registry pins which revision that is


def test_external_ids(plog):
    long_id = "x" * 201
    with pytest.raises(InputError, match=r"^external_id: has 201 characters \(max 200\)$"):
        plog.log_predictions([record("fine text"), record("long id", external_id=long_id)])
    with pytest.raises(InputError, match="external_id: must be a string, got int"):
        plog.log_predictions([record("an int id", external_id=7)])
    assert plog.count_since("demo", 0) == 0  # nothing of either call
    plog.log_predictions([record("at the limit", external_id="y" * 200)])
    assert plog.predictions("demo")["external_id"].tolist() == ["y" * 200]
    values = [None, float("nan"), pd.NA, "  ", " a-1 ", 12, 12.0, 12.5, "007"]
    assert [external_id_text(v) for v in values] == [
        None, None, None, None, "a-1", "12", "12", "12.5", "007"
    ]  # fmt: skip


def test_upgrade_from_0003_keeps_predictions(db_url):
    """Rows logged before revision 0004 have no external_id; new rows can have one."""
    predictions = sa.table(
        "predictions",
        *(sa.column(c) for c in PREDICTION_COLUMNS if c not in ("at", "top_k", "external_id")),
        sa.column("at", sa.DateTime(timezone=True)),
        sa.column("top_k", sa.JSON()),
    )
    old = dict(
        at=datetime(2025, 3, 4, tzinfo=UTC), recipe="demo", taxonomy_version="v1",
        adapter_id=1, text="card lost", text_sha256=text_sha256("card lost"), text_chars=9,
        predicted_label="card", confidence=0.5, top_k=[{"label": "card", "p": 0.5}],
        source="batch:old.csv", batch_id="b0",
    )  # fmt: skip
    engine = registry_engine(db_url)
    try:
        with engine.begin() as conn:
            upgrade(conn, "0003")
            conn.execute(predictions.insert(), [old])
    finally:
        engine.dispose()
    migrate(db_url)  # modelops init
    with ProductionLog(db_url) as plog:
        plog.log_predictions([record("refund please", external_id="r-2")])
        frame = plog.predictions("demo")
    assert frame["source"].tolist() == ["batch:old.csv", "api"]
    assert frame["external_id"].isna().tolist() == [True, False]
    assert frame["external_id"].iloc[1] == "r-2"


def test_out_of_scope_score_and_flag_round_trip(plog):
    """Revision 0007: each prediction's out-of-scope score and flag, null for predictions
    of an adapter without an out-of-scope model."""
    ids = plog.log_predictions(
        [
            record("card lost", oos_score=0.125, out_of_scope=False),
            record("zxqv blorp", oos_score=0.75, out_of_scope=True),
            record("refund please"),
        ]
    )
    frame = plog.predictions("demo")
    assert frame["id"].tolist() == ids
    assert frame["oos_score"].tolist()[:2] == [0.125, 0.75]
    assert frame["out_of_scope"].tolist()[:2] == [False, True]
    assert frame["oos_score"].isna().tolist() == [False, False, True]
    assert frame["out_of_scope"].isna().tolist() == [False, False, True]
    # the buffered JSON form of the HTTP service carries them too
    buffered = PredictionRecord.from_json(record("x y", oos_score=0.5, out_of_scope=True).to_json())
    assert (buffered.oos_score, buffered.out_of_scope) == (0.5, True)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"oos_score": "high"}, "oos_score: must be a number or null, got str"),
        ({"oos_score": float("nan")}, "oos_score: must be finite"),
        ({"out_of_scope": "yes"}, "out_of_scope: must be true, false or null, got str"),
    ],
)
def test_bad_out_of_scope_values_are_refused(plog, fields, message):
    with pytest.raises(InputError, match=message):
        plog.log_predictions([record("card lost", **fields)])
    assert plog.count_since("demo", 0) == 0


def test_upgrade_from_0006_keeps_predictions_without_a_score(db_url):
    """Rows logged before revision 0007 read back with a null score and flag."""
    old_columns = [c for c in PREDICTION_COLUMNS if c not in ("oos_score", "out_of_scope")]
    predictions = sa.table(
        "predictions",
        *(sa.column(c) for c in old_columns if c not in ("at", "top_k")),
        sa.column("at", sa.DateTime(timezone=True)),
        sa.column("top_k", sa.JSON()),
    )
    old = dict(
        at=datetime(2026, 3, 4, tzinfo=UTC), recipe="demo", taxonomy_version="v1",
        adapter_id=1, text="card lost", text_sha256=text_sha256("card lost"), text_chars=9,
        predicted_label="card", confidence=0.5, top_k=[{"label": "card", "p": 0.5}],
        source="api", batch_id="b0", external_id=None,
    )  # fmt: skip
    engine = registry_engine(db_url)
    try:
        with engine.begin() as conn:
            upgrade(conn, "0006")
            conn.execute(predictions.insert(), [old])
    finally:
        engine.dispose()
    migrate(db_url)
    with ProductionLog(db_url) as plog:
        plog.log_predictions([record("refund please", oos_score=0.3, out_of_scope=False)])
        frame = plog.predictions("demo")
    assert frame["oos_score"].isna().tolist() == [True, False]
    assert frame["out_of_scope"].tolist()[1] is False
    assert frame["out_of_scope"].isna().tolist() == [True, False]


def test_new_rows_of_every_recipe_in_one_query(plog):
    demo = plog.log_predictions([record(f"text number {i}") for i in range(4)])
    other = plog.log_predictions([record(f"other {i}", recipe="other") for i in range(3)])
    quiet = {"demo": demo[-1], "other": other[-1], "none": 0}
    assert plog.new_rows(quiet) == {}
    assert plog.new_rows({}) == {}
    # each recipe from its own id; a recipe with no rows after it is left out
    assert plog.new_rows({"demo": demo[1], "other": 0, "none": 0}) == {
        "demo": (2, demo[-1]),
        "other": (3, other[-1]),
    }
    assert plog.new_rows({"other": other[0]}) == {"other": (2, other[-1])}


def test_new_rows_count_stops_at_the_bound(plog):
    demo = plog.log_predictions([record(f"text number {i}") for i in range(6)])
    other = plog.log_predictions([record(f"other {i}", recipe="other") for i in range(2)])
    # the count stops at the bound; the newest id is still each recipe's newest
    assert plog.new_rows({"demo": 0, "other": 0}, at_most=3) == {
        "demo": (3, demo[-1]),
        "other": (2, other[-1]),
    }
    assert plog.new_rows({"demo": demo[3]}, at_most=3) == {"demo": (2, demo[-1])}
    assert plog.new_rows({"demo": demo[-1]}, at_most=3) == {}
    with pytest.raises(InputError, match="at_most"):
        plog.new_rows({"demo": 0}, at_most=0)
