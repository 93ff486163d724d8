"""The report browser tests skip only where no Chromium is installed and ``CI`` is not
``true``; under ``CI=true`` a missing browser fails them."""

from __future__ import annotations

import pytest

from modelops_tests.fixtures import security_reports


@pytest.fixture
def no_browser(monkeypatch, tmp_path):
    monkeypatch.setattr(security_reports.shutil, "which", lambda _name: None)
    monkeypatch.setattr(security_reports, "DEBIAN_CHROMIUM", tmp_path / "no-chromium")


def test_a_missing_browser_skips_outside_ci(no_browser, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="make browser"):
        security_reports.chromium()
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        security_reports.chromium()


def test_a_missing_browser_fails_under_ci(no_browser, monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no chromium installed"):
        security_reports.chromium()
