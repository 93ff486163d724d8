"""Stored script injection in drift reports, attacked as in a browser: a real Evidently
report whose production window holds script-injection payloads, stored in a real artifact
store, served by the reports app under uvicorn on loopback, opened in headless Chromium.
No payload runs, the report still draws itself, and scripts of a report run in an opaque
origin: no cookies, no storage, no requests to the API's origin."""

from __future__ import annotations

import httpx
import pytest

from modelops.serving.reports import report_path, reports_app
from modelops.stores.artifacts.local import LocalArtifactStore
from modelops_tests.fixtures.http_server import ServerThread
from modelops_tests.fixtures.security_reports import (
    attacked,
    chromium,
    dump_dom,
    mark,
    raw_evidently_page,
    rendered,
    root_attributes,
    write_report,
)

WRITTEN = "drift/demo/adapter-1/window-1-60.html"  # as report_html writes it now
OLD = "drift/demo/adapter-1/window-61-120.html"  # as Evidently wrote it before (unescaped)
HANDLERS = "drift/demo/adapter-1/window-121-180.html"  # markup with handlers in the body
PROBE = "drift/demo/adapter-1/window-181-240.html"  # a report script probing its origin

_GLOBAL = "<script>var global = globalThis</script>"


def _probe(target: str) -> str:
    """A report script that tries the API origin's cookies, storage and responses, and
    writes what it got onto the page."""
    return f"""<script>var global = globalThis;
(function () {{
  var root = document.documentElement;
  function note(name, value) {{ root.setAttribute("data-probe-" + name, String(value)); }}
  note("origin", self.origin);
  try {{ document.cookie = "probe=1"; note("cookie", "read:" + document.cookie); }}
  catch (e) {{ note("cookie", "blocked"); }}
  try {{ localStorage.setItem("probe", "1"); note("storage", localStorage.getItem("probe")); }}
  catch (e) {{ note("storage", "blocked"); }}
  note("fetch", "pending");
  try {{
    fetch("{target}", {{credentials: "include"}})
      .then(function (r) {{ return r.text(); }})
      .then(function (t) {{ note("fetch", "read:" + t.length); }},
            function () {{ note("fetch", "blocked"); }});
  }} catch (e) {{ note("fetch", "blocked"); }}
}})();</script>"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``(url, store)``: the reports app on loopback over a store holding the four pages."""
    chromium()
    root = tmp_path_factory.mktemp("reports")
    store = LocalArtifactStore(root / "artifacts")
    written = write_report(root / "written.html")
    store.put_file(WRITTEN, written)
    raw = raw_evidently_page()
    pages = {
        OLD: raw,
        HANDLERS: raw.replace(
            "<body>", f'<body><img src="x" onerror="{mark(90)}"><svg onload="{mark(91)}"></svg>', 1
        ),
    }
    server = ServerThread(reports_app(store))
    pages[PROBE] = raw.replace(_GLOBAL, _probe(server.url + report_path(WRITTEN)), 1)
    assert pages[PROBE] != raw and pages[HANDLERS] != raw
    for key, page in pages.items():
        path = root / key.replace("/", "_")
        path.write_text(page, encoding="utf-8")
        store.put_file(key, path)
    with server as url:
        yield url, store


@pytest.mark.parametrize("key", [WRITTEN, OLD], ids=["written-now", "stored-unescaped"])
def test_no_payload_runs_and_the_report_draws(served, key, tmp_path):
    url, _store = served
    dom = dump_dom(url + report_path(key), tmp_path / "profile")
    assert attacked(dom) == [], "an injected script ran"
    assert rendered(dom), "the report did not draw itself"
    assert 'class="main-svg"' in dom  # its plots are there


def test_inline_event_handlers_in_a_report_do_not_run(served, tmp_path):
    url, _store = served
    dom = dump_dom(url + report_path(HANDLERS), tmp_path / "profile")
    assert attacked(dom) == [], "an inline event handler ran"
    assert rendered(dom)


def test_report_scripts_run_in_an_opaque_origin(served, tmp_path):
    url, _store = served
    dom = dump_dom(url + report_path(PROBE), tmp_path / "profile")
    probe = root_attributes(dom)
    assert 'data-probe-origin="null"' in probe, f"the probe ran elsewhere: {probe}"
    assert 'data-probe-cookie="blocked"' in probe, probe
    assert 'data-probe-storage="blocked"' in probe, probe
    assert 'data-probe-fetch="blocked"' in probe, probe
    assert rendered(dom), "the report did not draw itself in the sandbox"


def test_reports_are_served_with_a_sandboxing_policy(served):
    url, _store = served
    answer = httpx.get(url + report_path(WRITTEN))
    assert answer.status_code == 200
    policy = {
        part.strip().split(" ", 1)[0]: part.strip()
        for part in answer.headers["content-security-policy"].split(";")
    }
    assert policy["sandbox"] == "sandbox allow-scripts"  # no allow-same-origin
    assert policy["default-src"] == "default-src 'none'"
    assert policy["connect-src"] == "connect-src 'none'"
    sources = policy["script-src"].split()[1:]
    assert len(sources) == 4 and all(s.startswith("'sha256-") for s in sources)
    assert "'unsafe-inline'" not in policy["script-src"]
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "<!--" not in answer.text
