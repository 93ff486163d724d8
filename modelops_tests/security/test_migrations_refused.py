"""Migrations run only in ``modelops init``: a database at an older revision (0004),
a newer unknown one, an empty one or a missing SQLite file is refused by every other
process that opens it (``modelops serve`` as a real process, a CLI command, the
registry, the production log), with a message naming ``modelops init``, and nothing in
it changes; ``modelops init`` then migrates it, keeping its rows."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from modelops.cli import main
from modelops.config.errors import ModelopsError
from modelops.stores.db.engine import head_revision, migrate, registry_engine, upgrade
from modelops.stores.production_log import ProductionLog
from modelops.stores.registry import Registry
from modelops.stores.serving_log import ServingLog
from modelops_tests.fixtures.network import free_port
from modelops_tests.fixtures.processes import python, settings_env, workspace_env
from modelops_tests.fixtures.workspace import make_workspace

OLD = "0004"
SERVE = "import sys; from modelops.cli import main; sys.exit(main(sys.argv[1:]))"
ROW = dict(
    at=datetime(2026, 3, 4, tzinfo=UTC), recipe="demo", taxonomy_version="v1", adapter_id=1,
    text="card lost", text_sha256="0" * 64, text_chars=9, predicted_label="card_lost",
    confidence=0.5, top_k=[{"label": "card_lost", "p": 0.5}], source="batch:old.csv",
    batch_id="b0", external_id="r-1",
)  # fmt: skip


def at_revision(url: str, revision: str) -> None:
    """The database at ``url`` migrated to ``revision`` only, with one logged row."""
    predictions = sa.table(
        "predictions",
        *(sa.column(c) for c in ROW if c not in ("at", "top_k")),
        sa.column("at", sa.DateTime(timezone=True)),
        sa.column("top_k", sa.JSON()),
    )
    engine = registry_engine(url)
    try:
        with engine.begin() as conn:
            upgrade(conn, revision)
            conn.execute(predictions.insert(), [ROW])
    finally:
        engine.dispose()


def state(url: str) -> dict:
    """Everything a refusal must leave as it was: the revision, every table's columns and
    rows, and for SQLite the file's bytes."""
    engine = registry_engine(url)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            tables = {
                t: (
                    [c["name"] for c in inspector.get_columns(t)],
                    sorted(
                        map(tuple, conn.execute(sa.text(f'SELECT * FROM "{t}"')).all()), key=str
                    ),
                )
                for t in sorted(inspector.get_table_names())
            }
    finally:
        engine.dispose()
    found = {"tables": tables}
    if url.startswith("sqlite:///"):
        found["sha256"] = hashlib.sha256(
            Path(url.removeprefix("sqlite:///")).read_bytes()
        ).hexdigest()
    return found


@pytest.fixture
def old_url(db_url):
    at_revision(db_url, OLD)
    return db_url


@pytest.mark.parametrize("store", [Registry, ProductionLog, ServingLog])
def test_opening_an_older_database_is_refused_and_changes_nothing(old_url, store):
    before = state(old_url)
    assert before["tables"]["alembic_version"][1] == [(OLD,)]
    with pytest.raises(ModelopsError) as refused:
        store(old_url)
    message = str(refused.value)
    assert f"at revision {OLD}, older than this code's {head_revision()}" in message
    assert "run `modelops init`" in message
    assert state(old_url) == before


def test_modelops_serve_refuses_an_older_database(tiny_catalog, tmp_path, old_url):
    """A real ``modelops serve`` process: it exits naming ``modelops init`` before it
    listens, and the database is as it was."""
    settings = dataclasses.replace(make_workspace(tmp_path, tiny_catalog), database_url=old_url)
    before = state(old_url)
    port = free_port()
    process = subprocess.Popen(
        [python(), "-c", SERVE, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=settings_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _out, err = process.communicate(timeout=180)
    finally:
        if process.poll() is None:  # still serving: it should have refused
            process.kill()
            process.communicate()
    assert process.returncode == 1, err[-3000:]
    assert "modelops: error: cannot open registry" in err
    assert f"at revision {OLD}" in err and "run `modelops init`" in err
    assert state(old_url) == before


def test_modelops_init_migrates_and_keeps_the_rows(tiny_catalog, tmp_path, old_url, monkeypatch):
    settings = dataclasses.replace(make_workspace(tmp_path, tiny_catalog), database_url=old_url)
    for name, value in workspace_env(settings).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    assert main(["registry", "list"]) == 1  # any other command refuses
    assert state(old_url)["tables"]["alembic_version"][1] == [(OLD,)]

    assert main(["init"]) == 0
    with ProductionLog(old_url) as log:
        logged = log.predictions("demo")
    assert logged["text"].tolist() == ["card lost"] and logged["external_id"].tolist() == ["r-1"]
    assert main(["registry", "list"]) == 0


def test_an_empty_or_missing_database_is_refused_and_not_created(tmp_path, db_url):
    missing = tmp_path / "nowhere" / "modelops.db"
    with pytest.raises(ModelopsError, match="no database file: run `modelops init`"):
        Registry(f"sqlite:///{missing}")
    assert not missing.parent.exists()
    engine = registry_engine(db_url)  # an empty database (created, never migrated)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE unrelated (x INTEGER)"))
    engine.dispose()
    before = state(db_url)
    with pytest.raises(ModelopsError, match=r"has no schema .*: run `modelops init`"):
        ProductionLog(db_url)
    assert state(db_url) == before


def test_a_database_migrated_by_newer_code_is_refused(db_url):
    migrate(db_url)
    engine = registry_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999_future'"))
    engine.dispose()
    before = state(db_url)
    with pytest.raises(
        ModelopsError, match="revision 9999_future, which this release does not know"
    ):
        Registry(db_url)
    assert state(db_url) == before
