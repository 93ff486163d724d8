"""A database password never becomes plain resource configuration (shown in the UI)."""

from __future__ import annotations

import dataclasses

import dagster as dg
import pytest

from modelops.config.errors import InputError
from modelops.config.settings import Settings
from modelops.defs.resources import DATABASE_URL_VAR, build_resources

PASSWORD = "pw-9f3k2"
URL = f"postgresql+psycopg2://modelops:{PASSWORD}@db.internal:5432/modelops"


def test_an_explicit_url_with_a_password_is_refused(monkeypatch, tmp_path):
    monkeypatch.delenv(DATABASE_URL_VAR, raising=False)
    settings = dataclasses.replace(Settings.from_env(), database_url=URL, home=tmp_path)
    with pytest.raises(InputError, match=f"pass it in {DATABASE_URL_VAR}") as exc:
        build_resources(settings)
    assert PASSWORD not in str(exc.value)
    assert "modelops:***@db.internal" in str(exc.value)


def test_the_url_from_the_environment_is_a_reference_by_name(monkeypatch):
    monkeypatch.setenv(DATABASE_URL_VAR, URL)
    resources = build_resources(Settings.from_env())
    value = resources["registry"].database_url
    assert isinstance(value, dg.EnvVar) and value.env_var_name == DATABASE_URL_VAR
    shown = repr(resources["registry"]) + repr(resources["production_log"])
    assert PASSWORD not in shown
