"""Stored drift reports over HTTP: a real uvicorn server on loopback serves them from the
artifact store, and no request reaches a key outside the reports."""

from __future__ import annotations

import httpx
import pytest

from modelops.serving.reports import report_key, report_path, report_url, reports_app
from modelops.stores.artifacts.local import LocalArtifactStore
from modelops_tests.fixtures.http_server import ServerThread

KEY = "drift/demo/adapter-3/window-1-200.html"
HTML = "<!doctype html><html><body>drift report of rows 1-200</body></html>"


@pytest.fixture
def store(tmp_path):
    artifacts = LocalArtifactStore(tmp_path / "artifacts")
    page = tmp_path / "report.html"
    page.write_text(HTML, encoding="utf-8")
    artifacts.put_file(KEY, page)
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-CONTENT", encoding="utf-8")
    artifacts.put_file("adapters/demo/v1/secret.html", secret)
    return artifacts


def test_report_urls_follow_the_stored_keys():
    assert report_path(KEY) == "/reports/demo/adapter-3/window-1-200"
    assert (
        report_url("http://host:8080/", KEY)
        == "http://host:8080/reports/demo/adapter-3/window-1-200"
    )
    assert report_key("demo", "adapter-3", "window-1-200") == KEY
    for bad in (
        ("..", "adapter-3", "window-1-2"),
        ("demo", "adapter-x", "window-1-2"),
        ("demo", "adapter-3", "window-1-2.html"),
        ("a/b", "adapter-3", "window-1-2"),
    ):
        assert report_key(*bad) is None
    assert report_path("adapters/demo/v1/secret.html") is None
    assert report_path("drift/../x/adapter-1/window-1-2.html") is None


def test_a_stored_report_answers_over_http(store):
    with ServerThread(reports_app(store)) as base, httpx.Client(base_url=base) as client:
        response = client.get(report_path(KEY))
        assert response.status_code == 200
        # Not an Evidently report (modelops_tests/security/test_reports_* serve real ones):
        # shown as text, in a sandbox where nothing runs.
        assert response.headers["content-type"].startswith("text/plain")
        assert response.headers["content-security-policy"] == "sandbox; default-src 'none'"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.text == HTML
        missing = client.get("/reports/demo/adapter-3/window-1-400")
        assert missing.status_code == 404 and "no such report" in missing.text
        for path in (
            "/reports/demo/adapter-3/..%2F..%2Fadapters",
            "/reports/..%2Fadapters/demo/v1",
            "/reports/demo/adapter-3/window-1-200.html",
            "/reports/demo/v1/secret",
        ):
            response = client.get(path)
            assert response.status_code == 404, path
            assert "SECRET-CONTENT" not in response.text
        assert client.post(report_path(KEY), json={}).status_code == 405  # JSON: past the 415 gate
