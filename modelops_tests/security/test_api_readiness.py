"""``/readyz`` answers without a token, so it must not tell an attacker where the stores
are: with the registry database gone (PostgreSQL dropped, SQLite overwritten) it says
"not ready" and why in fixed words, while the full story (host, user, database, path)
goes to the server's log at WARNING under the request's id.

A workspace with a recipe but no trained adapter: the server waits for one, so its
readiness follows the registry on every poll (no training needed)."""

from __future__ import annotations

import re
from pathlib import Path

import sqlalchemy as sa

from modelops.stores.db.engine import registry_engine, upgrade
from modelops_tests.fixtures.security_api import ServeProcess, wait_for
from modelops_tests.fixtures.workspace import make_workspace

NO_ADAPTER = "no serving adapter yet"


def _migrated(url: str) -> None:
    engine = registry_engine(url)
    try:
        with engine.begin() as conn:
            upgrade(conn)
    finally:
        engine.dispose()


def _break(url: str) -> list[str]:
    """Make the database unusable; the words that would give it away."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database)
        with open(path, "r+b") as f:  # same file, not a database any more
            f.write(b"this is not a database. " * 64)
        return [str(path), path.name, str(path.parent), "sqlite"]
    # the server's maintenance database, from which another one can be dropped
    admin = sa.create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'drop database "{parsed.database}" with (force)'))
    finally:
        admin.dispose()
    return [parsed.database, parsed.host, str(parsed.port), parsed.username, "postgres"]


def test_readyz_names_no_host_user_database_or_path(db_url, tiny_catalog, tmp_path):
    settings = make_workspace(tmp_path / "ws", tiny_catalog, database_url=db_url)
    _migrated(settings.database_url)
    with ServeProcess(settings, tmp_path / "serve.log", "--recipe", "demo") as serve:
        waiting = wait_for(  # once the registry was asked: before, "not loaded yet"
            lambda: (
                (a := serve.request("GET", "/readyz")).status == 503
                and NO_ADAPTER in a.json()["waiting"]["demo"]
                and a
            ),
            "the registry to say there is no adapter",
        )
        assert waiting.json()["status"] == "waiting"
        secrets = _break(settings.database_url)
        broken = wait_for(
            lambda: (
                (a := serve.request("GET", "/readyz")).status == 503
                and NO_ADAPTER not in a.json()["waiting"]["demo"]
                and a
            ),
            "readiness to notice the database is gone",
        )
        text = broken.body.decode()
        for secret in [*secrets, str(tmp_path), "://", "@"]:
            assert secret.lower() not in text.lower(), (secret, text)
        doc = broken.json()
        assert doc["status"] == "waiting" and "registry" in doc["waiting"]["demo"]
        rid = broken.headers["x-request-id"]
        assert serve.request("GET", "/healthz").status == 200  # the process lives on
    lines = [x for x in serve.output().splitlines() if f"[{rid}]" in x]
    assert any(re.search(r"\bWARNING\b.*not ready: recipe demo", x) for x in lines), lines
    told = " ".join(lines)
    assert secrets[0] in told  # the log has the details the answer leaves out
