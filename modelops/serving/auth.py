"""Bearer-token auth and request ids, as one ASGI middleware.

With a token configured every route but ``/healthz``, ``/readyz`` and
``/openapi.json`` needs ``Authorization: Bearer <token>`` (compared in constant
time). Binding to anything but loopback without a token is refused
(:func:`check_binding`). Every response carries ``X-Request-ID`` (the client's, when it
sent a sane one, else a new one), which the service's log lines name too.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
import uuid
from contextvars import ContextVar

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from modelops.config.errors import InputError

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json"})
_SANE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
"""The id of the request being handled (for log lines)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_binding(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without a token."""
    if not token and not is_loopback(host):
        raise InputError(
            None,
            "--host",
            f"binding to {host} needs a bearer token: set MODELOPS_SERVE_TOKEN "
            "(or pass --token-file)",
        )


class AuthMiddleware:
    """See the module docstring."""

    def __init__(self, app: ASGIApp, token: str | None):
        self.app = app
        self.token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        sent = request.headers.get("x-request-id", "")
        rid = sent if _SANE_ID.match(sent) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        token = request_id_var.set(rid)

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            if self.token is not None and scope["path"] not in OPEN_PATHS:
                header = request.headers.get("authorization", "")
                scheme, _, given = header.partition(" ")
                if scheme.lower() != "bearer" or not hmac.compare_digest(
                    given.strip().encode(), self.token
                ):
                    response = JSONResponse(
                        {
                            "error": "missing or wrong bearer token",
                            "field": "Authorization",
                            "request_id": rid,
                        },
                        status_code=401,
                        headers={"WWW-Authenticate": "Bearer"},
                    )
                    await response(scope, receive, send_with_id)
                    return
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every log record (``%(request_id)s``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True
