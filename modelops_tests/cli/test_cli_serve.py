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
