"""The drift path's production-log reads stay bounded however long the log grows:
``count_since(..., at_most=)`` stops counting at the window size, ``labels_for`` reads
the window's feedback by prediction id, ``new_rows`` reads each recipe's range past its
cursor, and on PostgreSQL every one of these queries
is served by the index meant for it (the planner, told not to scan tables, picks it; with
that index missing it falls back to a scan or a wider index)."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from modelops.stores.db.engine import migrate
from modelops.stores.production_log import ProductionLog
from modelops_tests.fixtures.prediction_rows import record
from modelops_tests.fixtures.query_plans import explained


@pytest.fixture
def plog(db_url):
    migrate(db_url)
    with ProductionLog(db_url) as log:
        yield log


def test_count_stops_at_the_bound(plog):
    ids = plog.log_predictions([record(f"text {i}") for i in range(7)])
    plog.log_predictions([record("elsewhere", recipe="other")])
    assert plog.count_since("demo", 0, at_most=3) == 3
    assert plog.count_since("demo", 0, at_most=100) == 7
    assert plog.count_since("demo", ids[4], at_most=100) == 2
    assert plog.count_since("demo", 0, at_most=0) == 0
    assert plog.count_since("demo", 0) == 7


def test_labels_for_the_window_only(plog):
    ids = plog.log_predictions([record(f"text {i}") for i in range(5)])
    other = plog.log_predictions([record("text 0", recipe="other")])
    plog.add_feedback("demo", true_label="first", prediction_id=ids[1], source="crm")
    plog.add_feedback("demo", true_label="second", prediction_id=ids[1], source="crm")
    plog.add_feedback("demo", true_label="x", prediction_id=ids[3], source="crm")
    plog.add_feedback("other", true_label="theirs", prediction_id=other[0], source="crm")
    plog.add_feedback("demo", true_label="unlinked", text="never predicted", source="crm")
    labels = plog.labels_for("demo", ids[:3] + [other[0]])
    # the last label given wins; another recipe's feedback and rows outside the window don't
    assert labels == {ids[1]: "second"}
    assert plog.labels_for("demo", ids) == {ids[1]: "second", ids[3]: "x"}
    assert plog.labels_for("demo", []) == {}


def test_labels_for_more_ids_than_one_in_list(plog, monkeypatch):
    import modelops.stores.production_log as production_log

    monkeypatch.setattr(production_log, "_IN_CHUNK", 2)
    ids = plog.log_predictions([record(f"text {i}") for i in range(5)])
    for i, prediction_id in enumerate(ids):
        plog.add_feedback("demo", true_label=f"l{i}", prediction_id=prediction_id, source="crm")
    assert plog.labels_for("demo", ids) == {p: f"l{i}" for i, p in enumerate(ids)}


FILL = """
insert into predictions (at, recipe, taxonomy_version, adapter_id, text, text_sha256,
    text_chars, predicted_label, confidence, top_k, source)
select now(), case when g <= 20000 then 'demo' else 'other' end, 'v1', 1, 'text ' || g,
    md5(g::text) || md5((g + 1)::text), 10, 'label_' || (g % 7), 0.9, '[]', 'test'
from generate_series(1, 100000) as g;
insert into feedback (at, recipe, prediction_id, text, text_sha256, true_label, source)
select now(), case when g <= 20000 then 'demo' else 'other' end, g, null,
    md5(g::text) || md5((g + 1)::text), 'label_1', 'test'
from generate_series(1, 100000) as g where g <= 20000 or g % 3 = 0;
"""


WINDOW = 200
DRIFT_PATH = {
    # drift report asset: is there a window at all?
    "window available": (lambda log: log.count_since("demo", 0, at_most=WINDOW), "predictions"),
    # drift check: the newest window
    "newest window": (
        lambda log: log.predictions("demo", newest=True, limit=WINDOW),
        "ix_predictions_recipe_id",
    ),
    # production-window sensor: the newest id
    "newest id": (lambda log: log.latest_prediction_id("demo"), "ix_predictions_recipe_id"),
    # drift check: the window's true labels
    "the window's feedback": (
        lambda log: log.labels_for("demo", list(range(19801, 20001))),
        "ix_feedback_prediction_id",
    ),
    # production-window sensor: new rows of every recipe since its cursor (a window of
    # demo's, none of other's), and a first tick (cursors at 0), its count bounded
    "new rows": (
        lambda log: log.new_rows({"demo": 20000 - WINDOW, "other": 100000}, at_most=WINDOW),
        "ix_predictions_recipe_id",
    ),
    "first tick": (
        lambda log: log.new_rows({"demo": 0, "other": 0}, at_most=WINDOW),
        "ix_predictions_recipe_id",
    ),
}


@pytest.mark.postgres
@pytest.mark.parametrize("name", sorted(DRIFT_PATH))
def test_drift_path_reads_its_rows_only_on_postgresql(pg_url, name):
    """The log holds 100,000 predictions; the recipe's 20,000 are the oldest (it has been
    quiet since), the case where walking the primary key from the newest end would read
    every other recipe's rows first; each of them has feedback. Each drift-path read, as
    the log sends it, must use the index meant for it and read about its own rows."""
    migrate(pg_url)
    call, index = DRIFT_PATH[name]
    engine = sa.create_engine(pg_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(FILL))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("analyze predictions"))
            conn.execute(sa.text("analyze feedback"))
    finally:
        engine.dispose()
    with ProductionLog(pg_url) as log:
        plans = explained(log._engine, lambda: call(log), "analyze, format text")
    plan = "\n\n".join(plans)
    assert "Seq Scan" not in plan, f"{name}: scans a table:\n{plan}"
    if index != "predictions":
        assert index in plan, f"{name}: does not use {index}:\n{plan}"
    removed = [int(n) for n in re.findall(r"Rows Removed by (?:Join )?Filter: (\d+)", plan)]
    assert max(removed, default=0) <= WINDOW, f"{name}: reads other rows:\n{plan}"
    # what each scan returned (per loop: one loop per recipe asked): no more than a window
    scanned = [int(n) for n in re.findall(r"Scan .*actual time=\S+ rows=(\d+) loops", plan)]
    assert scanned, plan
    assert max(scanned) <= WINDOW, f"{name}: reads more than a window:\n{plan}"
