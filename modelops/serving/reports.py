"""Stored drift reports over HTTP, so that a link in the Dagster UI opens in a browser.

The drift check stores Evidently's HTML report in the artifact store under
``drift/<recipe>/adapter-<id>/window-<first>-<last>.html`` (local folder or S3).
:func:`report_routes` serves them at ``GET /reports/<recipe>/adapter-<id>/window-<first>-<last>``
(the same path without ``drift/`` and ``.html``); :func:`report_url` builds that URL from
``Settings.serve_url``. Each path part is checked against a strict pattern before any key is
built, so no request can reach another key of the store (``..``, slashes, other prefixes).

Reports hold production texts, which are hostile: each page is escaped again as it is
served (``modelops.monitoring.html_safety``: reports stored before the escaping existed are
served escaped too; a page that is not an Evidently report is shown as plain text, its
scripts never run) and comes with a
``Content-Security-Policy`` (:func:`report_headers`) that runs the report's own scripts, by
hash, in a sandbox with an opaque origin: no access to the serving API's origin, its
cookies or storage, no network at all, and no other script (inline event handlers,
``javascript:`` URLs) runs.

The routes are Starlette routes: the ``modelops serve`` app mounts them (behind its bearer
token), and :func:`reports_app` is a standalone app of its own, behind the same
``AuthMiddleware`` (``python -m modelops.serving.reports`` serves the stores of
``Settings.from_env()``, with ``MODELOPS_SERVE_TOKEN`` or ``--token-file``, and refuses to
bind beyond loopback without a token, as ``modelops serve`` does).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from modelops.monitoring.html_safety import UnsafeReportError, safe_report_html, script_hashes
from modelops.serving.auth import AuthMiddleware
from modelops.stores.artifacts.base import ArtifactStore

log = logging.getLogger(__name__)

PREFIX = "/reports"
_RECIPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
_ADAPTER = re.compile(r"^adapter-[0-9]{1,18}$")
_WINDOW = re.compile(r"^window-[0-9]{1,18}-[0-9]{1,18}$")
_KEY = re.compile(r"^drift/([^/]+)/([^/]+)/([^/]+)\.html$")


def report_key(recipe: str, adapter: str, window: str) -> str | None:
    """The artifact-store key of a report, or None when a part is not a valid name."""
    if not (_RECIPE.match(recipe) and _ADAPTER.match(adapter) and _WINDOW.match(window)):
        return None
    return f"drift/{recipe}/{adapter}/{window}.html"


def report_path(key: str) -> str | None:
    """The URL path of a stored report key (None for a key this module does not serve)."""
    match = _KEY.match(key)
    if match is None or report_key(*match.groups()) != key:
        return None
    return PREFIX + "/" + "/".join(quote(part) for part in match.groups())


def report_url(serve_url: str, key: str) -> str | None:
    """The report's URL under ``serve_url`` (``Settings.serve_url``)."""
    path = report_path(key)
    return None if path is None else serve_url.rstrip("/") + path


def report_headers(page: str) -> dict[str, str]:
    """The response headers of a (safe) report ``page``.

    ``sandbox allow-scripts`` without ``allow-same-origin`` gives the page an opaque origin:
    its scripts cannot read the API origin's cookies or storage or call it as that origin.
    Only the page's own inline scripts run (their hashes); styles inline, the icon font a
    ``data:`` URL, and nothing is fetched (Evidently's page is self-contained, so it renders
    offline). No framing, no referrer, no MIME sniffing, never a cached copy on a shared cache.
    """
    policy = "; ".join(
        (
            "sandbox allow-scripts",
            "default-src 'none'",
            "script-src " + " ".join(script_hashes(page)),
            "style-src 'unsafe-inline'",
            "font-src data:",
            "img-src data: blob:",
            "connect-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "private, max-age=3600",
    }


_AS_TEXT_HEADERS = {
    "Content-Security-Policy": "sandbox; default-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, max-age=3600",
}


def _render(artifacts: ArtifactStore, key: str) -> Response:
    """The stored report ``key`` escaped, with :func:`report_headers`. A page that is not an
    Evidently report that can be made safe is shown as plain text, never run."""
    page = artifacts.get_bytes(key).decode("utf-8", errors="replace")
    try:
        safe = safe_report_html(page, source=key)
    except UnsafeReportError as exc:
        log.warning("serving %s as plain text: %s", key, exc)
        return PlainTextResponse(page, headers=_AS_TEXT_HEADERS)
    return HTMLResponse(safe, headers=report_headers(safe))


def report_routes(store: ArtifactStore | Callable[[], ArtifactStore]) -> list[Route]:
    """Starlette routes serving the stored drift reports of ``store`` (or of the store a
    callable returns, opened on first use)."""
    opened: list[ArtifactStore] = []

    def get_store() -> ArtifactStore:
        if not opened:
            opened.append(store() if callable(store) else store)
        return opened[0]

    async def report(request: Request) -> Response:
        params = request.path_params
        key = report_key(params["recipe"], params["adapter"], params["window"])
        if key is None:
            return PlainTextResponse("not a report name", status_code=404)
        artifacts = get_store()
        if not artifacts.exists(key):
            return PlainTextResponse(f"no such report: {key}", status_code=404)
        return await run_in_threadpool(_render, artifacts, key)

    return [Route(PREFIX + "/{recipe}/{adapter}/{window}", report, methods=["GET"])]


def reports_app(
    store: ArtifactStore | Callable[[], ArtifactStore], token: str | None = None
) -> Starlette:
    """A standalone app that serves only the reports (``modelops serve`` mounts the routes),
    behind ``AuthMiddleware``: with a ``token`` every request needs ``Authorization: Bearer``."""
    return Starlette(
        routes=report_routes(store), middleware=[Middleware(AuthMiddleware, token=token)]
    )


def read_token(token_file: Path | None, env_token: str | None) -> str | None:
    """The bearer token: the first line of ``token_file``, else ``env_token``
    (``MODELOPS_SERVE_TOKEN``)."""
    from modelops.config.errors import InputError

    if token_file is None:
        return env_token
    try:
        token = token_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(token_file, None, f"cannot read the token: {exc}") from None
    if not token:
        raise InputError(token_file, None, "the token file is empty")
    return token


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - a thin launcher
    """``python -m modelops.serving.reports [--host H] [--port P] [--token-file F]``: serve
    the reports of the artifact store in ``Settings.from_env()``, behind the bearer token
    (``--token-file``, else ``MODELOPS_SERVE_TOKEN``); beyond loopback only with one."""
    import argparse
    import sys

    import uvicorn

    from modelops.config.errors import ModelopsError
    from modelops.config.settings import Settings
    from modelops.serving.auth import check_binding
    from modelops.stores.artifacts.open_store import open_store

    parser = argparse.ArgumentParser(description="Serve the stored drift reports over HTTP.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--token-file", type=Path, help="default: MODELOPS_SERVE_TOKEN")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    try:
        token = read_token(args.token_file, settings.serve_token)
        check_binding(args.host, token)
    except ModelopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    store = open_store(settings.artifacts_uri, s3_endpoint_url=settings.s3_endpoint_url)
    uvicorn.run(reports_app(store, token), host=args.host, port=args.port)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
