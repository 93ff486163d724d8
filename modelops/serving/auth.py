"""The gate in front of every route, as one ASGI middleware: request ids, the Host
check, the bearer token and the content type of request bodies.

- Request ids: every request gets a new id from the server (``X-Request-ID`` of the
  response, the log lines, the prediction ids). A sane ``X-Request-ID`` the client sent
  is kept beside it (``client_request_id``: logged and stored with the predictions),
  never used as an id of ours: two clients sending the same one get distinct ids.
- Host: without a token, only requests whose ``Host`` names loopback (``localhost``,
  ``127.0.0.1``, ``[::1]``, any port) or one of the configured public names
  (``--public-name``) are answered; any other gets 421 before any route runs. A web
  page that rebinds its own DNS name to 127.0.0.1 so reaches nothing.
- Token: with a token configured every route but ``/healthz``, ``/readyz`` and
  ``/openapi.json`` needs ``Authorization: Bearer <token>`` (compared in constant time).
  Binding to anything but loopback without a token is refused (:func:`check_binding`).
- Bodies: a POST, PUT or PATCH must say ``Content-Type: application/json`` (UTF-8);
  anything else (``text/plain``, form-encoded, multipart, none) gets 415 before its body
  is read. Browsers send those three without asking the server first, so no web page
  can post to the API on a user's behalf.

Refused requests are counted by ``on_refused(reason)`` (``host``, ``token``,
``content_type``): the service's metric.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
import uuid
from collections.abc import Callable, Iterable
from contextvars import ContextVar

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from modelops.config.errors import InputError

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_SANE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_HOST = re.compile(r"^(\[[0-9a-f:.]+\]|[a-z0-9_.-]+)(:[0-9]{1,5})?$")

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
"""The id of the request being handled (for log lines)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str | None:
    """The name a ``Host`` header gives (lower case, no port, no brackets, no final dot);
    None when it is not one."""
    match = _HOST.match(header.strip().lower())
    if match is None:
        return None
    name = match.group(1)
    return name[1:-1] if name.startswith("[") else name.rstrip(".")


def public_names(values: Iterable[str]) -> frozenset[str]:
    """The host names ``--public-name`` (or ``MODELOPS_SERVE_PUBLIC_NAME``, comma
    separated) gives, checked: a port, if given, is ignored."""
    names = set()
    for value in values:
        for part in value.split(","):
            if not part.strip():
                continue
            name = host_name(part)
            if not name:
                raise InputError(None, "--public-name", f"{part.strip()!r} is not a host name")
            names.add(name)
    return frozenset(names)


def check_binding(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without a token."""
    if not token and not is_loopback(host):
        raise InputError(
            None,
            "--host",
            f"binding to {host} needs a bearer token: set MODELOPS_SERVE_TOKEN "
            "(or pass --token-file)",
        )


def is_json(content_type: str) -> bool:
    """Whether a ``Content-Type`` says JSON in UTF-8 (the charset, if given, is UTF-8)."""
    media, _, params = content_type.partition(";")
    if media.strip().lower() != "application/json":
        return False
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            return False
    return True


class AuthMiddleware:
    """See the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        token: str | None,
        public_names: Iterable[str] = (),
        on_refused: Callable[[str], None] | None = None,
    ):
        self.app = app
        self.token = token.encode() if token else None
        self.public_names = frozenset(public_names)
        self.on_refused = on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        rid = uuid.uuid4().hex
        sent = request.headers.get("x-request-id", "")
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        state["client_request_id"] = sent if _SANE_ID.match(sent) else None
        token = request_id_var.set(rid)

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            refused = self.refusal(request)
            if refused is None:
                await self.app(scope, receive, send_with_id)
                return
            reason, status, field, message, headers = refused
            if self.on_refused is not None:
                self.on_refused(reason)
            body = {"error": message, "field": field, "request_id": rid}
            response = JSONResponse(body, status_code=status, headers=headers)
            await response(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)

    def refusal(self, request: Request) -> tuple[str, int, str, str, dict] | None:
        """Why the gate refuses ``request``: (reason, status, field, message, headers),
        or None to let it through."""
        if self.token is None:
            header = request.headers.get("host", "")
            name = host_name(header)
            if name is None or not (is_loopback(name) or name in self.public_names):
                shown = header[:80].encode("ascii", "backslashreplace").decode()
                message = (
                    f"Host {shown!r} is not a name of this server: without a token it "
                    "answers loopback names and its --public-name only"
                )
                return "host", 421, "Host", message, {}
        if self.token is not None and request.scope["path"] not in OPEN_PATHS:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), self.token
            ):
                message = "missing or wrong bearer token"
                return "token", 401, "Authorization", message, {"WWW-Authenticate": "Bearer"}
        if request.method in BODY_METHODS and not is_json(request.headers.get("content-type", "")):
            message = "send the body as Content-Type: application/json (UTF-8)"
            return "content_type", 415, "Content-Type", message, {}
        return None


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every log record (``%(request_id)s``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True
