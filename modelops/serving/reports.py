"""Stored drift reports over HTTP, so that a link in the Dagster UI opens in a browser.

The drift check stores Evidently's HTML report in the artifact store under
``drift/<recipe>/adapter-<id>/window-<first>-<last>.html`` (local folder or S3).
:func:`report_routes` serves them at ``GET /reports/<recipe>/adapter-<id>/window-<first>-<last>``
(the same path without ``drift/`` and ``.html``); :func:`report_url` builds that URL from
``Settings.serve_url``. Each path part is checked against a strict pattern before any key is
built, so no request can reach another key of the store (``..``, slashes, other prefixes).

The routes are Starlette routes: the ``modelops serve`` app mounts them, and
:func:`reports_app` is a standalone app of its own (``python -m modelops.serving.reports``
serves the stores of ``Settings.from_env()``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from modelops.stores.artifacts.base import ArtifactStore

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
        return HTMLResponse(
            artifacts.get_bytes(key),
            headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )

    return [Route(PREFIX + "/{recipe}/{adapter}/{window}", report, methods=["GET"])]


def reports_app(store: ArtifactStore | Callable[[], ArtifactStore]) -> Starlette:
    """A standalone app that serves only the reports (``modelops serve`` mounts the routes)."""
    return Starlette(routes=report_routes(store))


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - a thin launcher
    """``python -m modelops.serving.reports [--host H] [--port P]``: serve the reports of the
    artifact store in ``Settings.from_env()``."""
    import argparse

    import uvicorn

    from modelops.config.settings import Settings
    from modelops.stores.artifacts.open_store import open_store

    parser = argparse.ArgumentParser(description="Serve the stored drift reports over HTTP.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    store = open_store(settings.artifacts_uri, s3_endpoint_url=settings.s3_endpoint_url)
    uvicorn.run(reports_app(store), host=args.host, port=args.port)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
