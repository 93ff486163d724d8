"""Database URLs as people paste them: ``postgres://``, ``postgresql://``,
``postgresql+psycopg://`` all reach PostgreSQL with the driver that is installed."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from modelops.config.errors import ModelopsError
from modelops.stores.db.engine import migrate, normalized_url
from modelops.stores.registry import Registry


def only(*modules: str):
    return lambda module: module in modules


@pytest.mark.parametrize(
    ("url", "installed", "driver"),
    [
        ("postgresql://u:p@db:5432/m", ("psycopg2",), "postgresql+psycopg2"),
        ("postgres://u:p@db/m", ("psycopg2",), "postgresql+psycopg2"),
        ("postgresql+psycopg://u@db/m", ("psycopg2",), "postgresql+psycopg2"),
        ("postgresql://u@db/m", ("psycopg", "psycopg2"), "postgresql+psycopg"),
        ("postgresql+psycopg2://u@db/m", ("psycopg", "psycopg2"), "postgresql+psycopg2"),
        ("postgresql+pg8000://u@db/m", (), "postgresql+pg8000"),
        ("sqlite:///x.db", (), "sqlite"),
    ],
)
def test_postgres_urls_get_an_installed_driver(url, installed, driver):
    parsed = normalized_url(url, installed=only(*installed))
    assert parsed.drivername == driver
    original = sa.engine.make_url(url)
    assert (parsed.host, parsed.database, parsed.username) == (
        original.host,
        original.database,
        original.username,
    )
    assert parsed.password == original.password


def test_no_driver_installed_names_the_packages_and_hides_the_password():
    with pytest.raises(ModelopsError) as info:
        normalized_url("postgresql+psycopg://u:secret@db/m", installed=only())
    message = str(info.value)
    assert "psycopg2-binary" in message and "psycopg[binary]" in message
    assert "secret" not in message


def test_psycopg2_by_name_is_not_swapped_for_another_driver():
    with pytest.raises(ModelopsError, match="psycopg2"):
        normalized_url("postgresql+psycopg2://u@db/m", installed=only("psycopg"))


@pytest.mark.postgres
@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg"])
def test_the_registry_opens_a_bare_postgresql_url(pg_url, scheme):
    pasted = scheme + pg_url[pg_url.index("://") :]
    migrate(pasted)
    with Registry(pasted) as registry:
        assert registry.list("nothing-yet") == []
        assert registry.url == pasted
