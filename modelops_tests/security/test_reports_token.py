"""The standalone reports server behind the same bearer token as ``modelops serve``, and
the same rule: no binding beyond loopback without a token. Real processes on loopback."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from modelops.serving.reports import report_path, reports_app
from modelops.stores.artifacts.local import LocalArtifactStore
from modelops_tests.fixtures.http_server import ServerThread
from modelops_tests.fixtures.network import free_port
from modelops_tests.fixtures.processes import REPO
from modelops_tests.fixtures.security_reports import write_report

KEY = "drift/demo/adapter-1/window-1-60.html"
CONTENT = "Value Drift for column text_length"  # a title of the report


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> LocalArtifactStore:
    root = tmp_path_factory.mktemp("token")
    artifacts = LocalArtifactStore(root / "artifacts")
    artifacts.put_file(KEY, write_report(root / "report.html"))
    return artifacts


def _env(store: LocalArtifactStore, **extra: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(REPO),
        "MODELOPS_HOME": str(store.root.parent / "home"),
        "MODELOPS_ARTIFACTS": str(store.root),
        "HF_HUB_OFFLINE": "1",
        **extra,
    }


def test_the_reports_app_needs_the_token(store):
    with ServerThread(reports_app(store, token="s3cret")) as url:
        path = url + report_path(KEY)
        refused = httpx.get(path)
        assert refused.status_code == 401 and CONTENT not in refused.text
        assert httpx.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        answer = httpx.get(path, headers={"Authorization": "Bearer s3cret"})
        assert answer.status_code == 200 and CONTENT in answer.text


def test_the_reports_server_refuses_to_bind_beyond_loopback_without_a_token(store):
    done = subprocess.run(
        [sys.executable, "-m", "modelops.serving.reports", "--host", "0.0.0.0",
         "--port", str(free_port())],
        env=_env(store), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "--host: binding to 0.0.0.0 needs a bearer token" in done.stderr
    assert "MODELOPS_SERVE_TOKEN" in done.stderr


def test_the_reports_server_serves_behind_the_token_of_its_token_file(store, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("from-the-file\n", encoding="utf-8")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "modelops.serving.reports", "--port", str(port),
         "--token-file", str(token_file)],
        env=_env(store, MODELOPS_SERVE_TOKEN="from-the-env"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}" + report_path(KEY)
        first = _first_answer(url, server)
        assert first.status_code == 401
        assert httpx.get(url, headers={"Authorization": "Bearer from-the-env"}).status_code == 401
        answer = httpx.get(url, headers={"Authorization": "Bearer from-the-file"})
        assert answer.status_code == 200 and CONTENT in answer.text
        assert "sandbox allow-scripts" in answer.headers["content-security-policy"]
    finally:
        server.terminate()
        server.wait(30)


def _first_answer(url: str, server: subprocess.Popen) -> httpx.Response:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"the reports server exited: {server.stdout.read()}")
        try:
            return httpx.get(url)
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("the reports server did not answer in 120 s")
