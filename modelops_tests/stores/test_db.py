"""The platform database's opening: URLs shown without their password, one clear error
naming what was opened."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from modelops.config.errors import ModelopsError
from modelops.stores.db.engine import Database, masked_url, migrate, registry_engine

PASSWORD = "s3cret"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            f"postgresql+psycopg2://user:{PASSWORD}@host/db",
            "postgresql+psycopg2://user:***@host/db",
        ),
        (
            f"postgresql+psycopg2://user:{PASSWORD}@host:5432/db?sslmode=require",
            "postgresql+psycopg2://user:***@host:5432/db?sslmode=require",
        ),
        ("postgresql+psycopg2://user:p%40ss%3Aw@host/db", "postgresql+psycopg2://user:***@host/db"),
        ("postgresql+psycopg2://user@host/db", "postgresql+psycopg2://user@host/db"),
        ("sqlite:////tmp/state/modelops.db", "sqlite:////tmp/state/modelops.db"),
        (  # credentials as query parameters (libpq's password=, a token)
            f"postgresql+psycopg2://user@host/db?password={PASSWORD}&sslmode=require",
            "postgresql+psycopg2://user@host/db?password=***&sslmode=require",
        ),
        # not parsable by SQLAlchemy (the port is no number): the password is still hidden
        (f"postgresql://user:{PASSWORD}@host:port/db", "postgresql://user:***@host:port/db"),
    ],
)
def test_masked_url_hides_the_password(url, shown):
    assert masked_url(url) == shown


def test_masked_url_takes_a_parsed_url_too():
    url = sa.engine.make_url(f"postgresql+psycopg2://user:{PASSWORD}@host/db")
    assert masked_url(url) == "postgresql+psycopg2://user:***@host/db"


class Thing(Database):
    what = "thing"


def test_open_errors_name_what_and_hide_the_password():
    url = f"postgresql+psycopg2://user:{PASSWORD}@127.0.0.1:1/db"  # nothing listens on 1
    shown = r"cannot open thing postgresql\+psycopg2://user:\*\*\*@127\.0\.0\.1:1/db"
    with pytest.raises(ModelopsError, match=shown) as exc:
        Thing(url)
    assert PASSWORD not in str(exc.value)
    with pytest.raises(ModelopsError, match=r"nosuchdb://user:\*\*\*@x/y") as exc:
        Thing(f"nosuchdb://user:{PASSWORD}@x/y")
    assert PASSWORD not in str(exc.value)
    with pytest.raises(ModelopsError, match="invalid database URL") as exc:
        registry_engine(f"post gres://user:{PASSWORD}@x/y")
    assert PASSWORD not in str(exc.value)


def test_a_database_opens_migrated_and_closes_on_exit(tmp_path):
    url = f"sqlite:///{tmp_path / 'state' / 'modelops.db'}"
    migrate(url)  # modelops init
    with Thing(url) as thing:
        assert thing.url == url
        with thing._session.begin() as session:
            tables = set(sa.inspect(session.connection()).get_table_names())
    assert {"adapter_versions", "aliases", "audit_log", "predictions", "feedback"} <= tables
