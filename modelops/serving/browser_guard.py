"""The guard in front of a web UI on loopback: no cross-site writes, no DNS rebinding.

A server on 127.0.0.1 keeps other hosts out, not the web pages the operator's browser
opens: such a page can send "simple" cross-site requests (a GET from an ``<img>``, a POST
with a ``text/plain`` or form body) and, after pointing a DNS name it controls at
127.0.0.1, read the answers. Dagster's webserver checks neither, and runs GraphQL
mutations from a GET's query string or a ``text/plain`` POST (measured: see
docs/security.md). :class:`BrowserGuard` is an ASGI middleware that refuses

- a ``Host`` that is not loopback or a configured public name (421: DNS rebinding),
- an ``Origin`` that does not name such a host (403: cross-site requests and WebSockets),
- a write (POST, PUT, PATCH, DELETE) whose body is not ``application/json`` (415: the
  body types a page can send without a CORS preflight),
- a GraphQL operation in a GET's query string (405: ``<img src=.../graphql?query=...>``).

It imports no Dagster: ``modelops ui`` wraps Dagster's webserver app with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qs, urlsplit

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from modelops.serving.auth import host_name, is_json, is_loopback, public_names

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class BrowserGuard:
    """See the module docstring. ``names`` are the extra host names the server may be
    reached by, e.g. the name an authenticating proxy forwards (checked as
    ``modelops serve --public-name`` checks them: the same Host rules as the API)."""

    def __init__(self, app: ASGIApp, names: Iterable[str] = ()):
        self.app = app
        self.public_names = public_names(names)

    def allowed(self, name: str | None) -> bool:
        return name is not None and (is_loopback(name) or name in self.public_names)

    def refusal(self, scope: Scope) -> tuple[int, str] | None:
        """Why this request is refused (status, reason), or None to let it through."""
        headers = Headers(scope=scope)
        if not self.allowed(host_name(headers.get("host", ""))):
            return 421, "the Host header names no host this server answers for"
        origin = headers.get("origin")
        if origin is not None and not self.allowed(host_name(urlsplit(origin).netloc)):
            return 403, "cross-site request refused (Origin is not this server)"
        if scope["type"] != "http":
            return None
        if scope["method"] not in SAFE_METHODS:
            if not is_json(headers.get("content-type", "")):
                return 415, "writes need Content-Type: application/json"
        elif scope["path"].endswith("/graphql") and "query" in parse_qs(
            scope.get("query_string", b"").decode("latin-1")
        ):
            return 405, "GraphQL over GET is refused: POST application/json"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refused = self.refusal(scope)
        if refused is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": refused[1]})
        else:
            status, reason = refused
            await PlainTextResponse(reason + "\n", status_code=status)(scope, receive, send)
