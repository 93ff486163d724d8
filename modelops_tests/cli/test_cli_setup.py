"""``modelops init``: it prepares the home and the database, and never shows the
database password."""

from __future__ import annotations

import pytest

from modelops.cli import main
from modelops.stores.db.engine import masked_url
from modelops.stores.registry import Registry

PASSWORD = "s3cret"


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """Every path init reads or writes under ``tmp_path``; no recipes yet."""
    (tmp_path / "recipes").mkdir()
    monkeypatch.setenv("MODELOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MODELOPS_RECIPES", str(tmp_path / "recipes"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    for name in ("MODELOPS_DATABASE_URL", "MODELOPS_ARTIFACTS"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def init(capsys) -> tuple[int, str, str]:
    code = main(["init"])
    out, err = capsys.readouterr()
    return code, out, err


def test_init_prepares_the_home_and_the_database(workspace, capsys):
    code, out, err = init(capsys)
    assert code == 0, err
    url = f"sqlite:///{workspace / 'home' / 'modelops.db'}"
    assert f"; registry {url};" in out
    assert (workspace / "dagster" / "dagster.yaml").is_file()
    assert (workspace / "home" / "artifacts").is_dir()
    with Registry(url) as registry:
        assert registry.list() == []


@pytest.mark.postgres
def test_init_shows_the_database_url_without_its_password(workspace, pg_url, monkeypatch, capsys):
    # The test server trusts local connections (conftest's admin URL has no password),
    # so it accepts any password: init succeeds and prints the URL it used.
    url = pg_url.replace("postgres@", f"postgres:{PASSWORD}@", 1)
    monkeypatch.setenv("MODELOPS_DATABASE_URL", url)
    code, out, err = init(capsys)
    assert code == 0, err
    assert f"; registry {masked_url(url)};" in out
    assert "postgres:***@127.0.0.1:5432/" in out
    assert PASSWORD not in out + err


def test_init_error_hides_the_database_password(workspace, monkeypatch, capsys):
    url = f"postgresql+psycopg2://user:{PASSWORD}@127.0.0.1:1/db"  # nothing listens on 1
    monkeypatch.setenv("MODELOPS_DATABASE_URL", url)
    code, out, err = init(capsys)
    assert code == 1
    assert "cannot open registry postgresql+psycopg2://user:***@127.0.0.1:1/db" in err
    assert PASSWORD not in out + err
