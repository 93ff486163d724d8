"""`modelops serve`'s app: the prediction API and the stored drift reports the Dagster UI
links to, behind one token, on a real uvicorn server."""

from __future__ import annotations

import httpx

from modelops.cli.serve import serve_app
from modelops.lifecycle.platform import Platform
from modelops.serving.reports import report_path
from modelops.serving.service import ServeConfig
from modelops_tests.fixtures.http_server import ServerThread
from modelops_tests.fixtures.workspace import make_workspace

KEY = "drift/demo/adapter-1/window-1-200.html"
HTML = "<!doctype html><html><body>drift of rows 1-200</body></html>"


def test_serve_mounts_the_drift_reports_behind_its_token(tmp_path, tiny_catalog):
    settings = make_workspace(tmp_path, tiny_catalog)
    platform = Platform.from_settings(settings)
    page = tmp_path / "report.html"
    page.write_text(HTML, encoding="utf-8")
    platform.store.put_file(KEY, page)
    config = ServeConfig(poll_s=0.2, buffer_dir=tmp_path / "buffer")
    with ServerThread(serve_app(platform, config, "s3cret")) as url:
        assert httpx.get(url + report_path(KEY)).status_code == 401
        auth = {"Authorization": "Bearer s3cret"}
        answer = httpx.get(url + report_path(KEY), headers=auth)
        assert answer.status_code == 200 and answer.text == HTML
        missing = httpx.get(url + "/reports/demo/adapter-1/window-1-9", headers=auth)
        assert missing.status_code == 404
        assert httpx.get(url + "/healthz").status_code == 200


def _answers(app, host: str) -> int:
    from starlette.testclient import TestClient

    return TestClient(app, base_url=f"http://{host}").get("/healthz").status_code


def test_serve_passes_its_limits_and_public_names(tmp_path, tiny_catalog, monkeypatch):
    """``modelops serve`` hands uvicorn its concurrency limit, the service its queue and
    body limits, and the gate its public names (flag, else environment variable)."""
    import logging

    import uvicorn

    from modelops.cli import main
    from modelops_tests.fixtures.processes import workspace_env

    settings = make_workspace(tmp_path, tiny_catalog)
    for name, value in workspace_env(settings).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MODELOPS_SERVE_TOKEN", raising=False)
    monkeypatch.setenv("MODELOPS_SERVE_PUBLIC_NAME", "env.example, other.example")
    apps = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: apps.append((app, kw)))
    handlers, level = logging.root.handlers[:], logging.root.level  # serve sets up logging
    try:
        assert main(["serve", "--max-concurrency", "7", "--max-queue", "3",
                     "--max-body-bytes", "999"]) == 0  # fmt: skip
        assert main(["serve", "--public-name", "flag.example"]) == 0
        assert main(["serve", "--public-name", "not a name"]) == 1
    finally:
        logging.root.handlers[:], logging.root.level = handlers, level
        for app, _ in apps:
            app.state.service.stop()
    (first, given), (second, default) = apps
    assert (given["limit_concurrency"], default["limit_concurrency"]) == (7, 512)
    assert (first.state.service.batcher.max_queue, second.state.service.batcher.max_queue) == (
        3,
        128,
    )
    assert first.state.service.config.limits.max_body_bytes == 999
    for host in ("env.example", "other.example:80", "localhost"):
        assert _answers(first, host) == 200, host
    assert _answers(first, "flag.example") == 421
    assert (_answers(second, "flag.example"), _answers(second, "env.example")) == (200, 421)
