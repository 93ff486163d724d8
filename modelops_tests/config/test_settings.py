"""Settings from the environment: defaults, and no password in their repr."""

from __future__ import annotations

from modelops.config.settings import Settings


def test_embedded_defaults_live_under_the_home_folder(tmp_path):
    settings = Settings.from_env({"MODELOPS_HOME": str(tmp_path / "home")})
    assert settings.database_url == f"sqlite:///{tmp_path / 'home' / 'modelops.db'}"
    assert settings.artifacts_uri == str(tmp_path / "home" / "artifacts")
    assert settings.dagster_home == tmp_path / "home" / "dagster"
    assert settings.s3_endpoint_url is None


def test_the_database_url_stays_out_of_the_repr():
    url = "postgresql+psycopg2://modelops:hunter2-secret@db:5432/modelops"
    settings = Settings.from_env({"MODELOPS_DATABASE_URL": url})
    assert settings.database_url == url
    assert "hunter2-secret" not in repr(settings) and "hunter2-secret" not in str(settings)
