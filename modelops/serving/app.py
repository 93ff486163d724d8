"""The HTTP app (Starlette): prediction, feedback, adapters, health, metrics, OpenAPI.

``build_app(service, token=..., extra_routes=...)`` wraps a
:class:`~modelops.serving.service.ServingService`; ``extra_routes`` mounts more
Starlette routes beside these (the stored drift reports). Each route is a module-level
handler that finds the service on ``request.app.state`` and calls one of its methods.
Errors answer JSON ``{"error", "field", "request_id"}``: 4xx for bad requests, 503
while a recipe has no adapter or the request queue is full (with ``Retry-After``), 500
with no detail (the log line has it, under the request id). In front of every route,
extra ones included, :class:`~modelops.serving.auth.AuthMiddleware` checks the Host
(without a token), the token (with one) and that request bodies are JSON.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TypeVar

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from modelops.config.errors import NotFoundError
from modelops.serving.auth import AuthMiddleware
from modelops.serving.schemas import (
    Limits,
    RequestError,
    feedback_request,
    openapi_document,
    parse_json,
    predict_request,
)
from modelops.serving.service import ServingService

logger = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]
T = TypeVar("T")


def _version() -> str:
    try:
        return version("modelops")
    except PackageNotFoundError:  # pragma: no cover - running from a checkout
        return "0"


def _rid(request: Request) -> str:
    return request.scope.get("state", {}).get("request_id", "-")


def _client_rid(request: Request) -> str | None:
    return request.scope.get("state", {}).get("client_request_id")


def _error(
    request: Request,
    status: int,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = {"error": message, "field": field, "request_id": _rid(request)}
    return JSONResponse(body, status_code=status, headers=headers)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused (413) as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestError(413, None, f"body over {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, None, f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _service(request: Request) -> ServingService:
    return request.app.state.service


def _body(request: Request, parse: Callable[[Any, Limits], T]) -> Callable[[], Awaitable[T]]:
    """Reads the request's body as JSON and checks it with ``parse``, when called (the
    service calls it once it knows where the request goes)."""
    limits = _service(request).config.limits

    async def read() -> T:
        return parse(parse_json(await _read_body(request, limits.max_body_bytes), limits), limits)

    return read


# --------------------------------------------------------------------------- routes


async def predict(request: Request) -> Response:
    body = _body(request, predict_request)
    recipe = request.path_params["recipe"]
    answer = await _service(request).predict(recipe, body, _rid(request), _client_rid(request))
    return JSONResponse(answer)


async def feedback(request: Request) -> Response:
    body = _body(request, feedback_request)
    answer = await _service(request).feedback(request.path_params["recipe"], body, _rid(request))
    return JSONResponse(answer, status_code=202)


async def adapters(request: Request) -> Response:
    return JSONResponse(_service(request).adapters())


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready or not, and why in fixed words; what went wrong in full goes to the log
    (WARNING, under this request's id), never to the (unauthenticated) answer."""
    service = _service(request)
    ready, body = service.readiness()
    if not ready:
        service.waiting.log()
    return JSONResponse(body, status_code=200 if ready else 503)


async def prometheus(request: Request) -> Response:
    return Response(_service(request).metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request) -> Response:
    return JSONResponse(request.app.state.openapi)


def _timed(route: str, handler: Handler) -> Handler:
    """``handler``, counted and timed in the service's metrics under ``route``."""

    async def wrapped(request: Request) -> Response:
        start = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status_code
            return response
        except RequestError as exc:
            status = exc.status
            raise
        except (HTTPException, NotFoundError):
            status = 404
            raise
        finally:
            metrics = _service(request).metrics
            metrics.requests.labels(route, str(status)).inc()
            metrics.latency.labels(route).observe(time.perf_counter() - start)

    return wrapped


ROUTES = (
    Route("/v1/recipes/{recipe}/predict", _timed("predict", predict), methods=["POST"]),
    Route("/v1/recipes/{recipe}/feedback", _timed("feedback", feedback), methods=["POST"]),
    Route("/v1/adapters", _timed("adapters", adapters), methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", prometheus, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
)


# --------------------------------------------------------------------------- errors


async def request_error(request: Request, exc: RequestError) -> Response:
    return _error(request, exc.status, exc.message, exc.field, exc.headers)


async def http_error(request: Request, exc: HTTPException) -> Response:
    return _error(request, exc.status_code, str(exc.detail))


async def not_found(request: Request, exc: NotFoundError) -> Response:
    return _error(request, 404, str(exc))


async def server_error(request: Request, exc: Exception) -> Response:
    logger.error("request %s failed", _rid(request), exc_info=exc)
    return _error(request, 500, "internal error (see the server log for this request id)")


EXCEPTION_HANDLERS = {
    RequestError: request_error,
    HTTPException: http_error,
    NotFoundError: not_found,
    Exception: server_error,
}


# --------------------------------------------------------------------------- the app


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette):
    """Starts and stops the app's service with it, when the app manages it."""
    manage = app.state.manage_service
    if manage:
        app.state.service.start()
    try:
        yield
    finally:
        if manage:
            app.state.service.stop()


def build_app(
    service: ServingService,
    *,
    token: str | None = None,
    public_names: Iterable[str] = (),
    extra_routes: Sequence[BaseRoute] = (),
    manage_service: bool = True,
) -> Starlette:
    """The app; with ``manage_service`` it starts and stops ``service`` with itself.
    Its handlers find ``service`` (and the OpenAPI document) on ``app.state``.
    ``public_names``: host names (besides loopback) a request may name in ``Host``
    when there is no token (:func:`~modelops.serving.auth.public_names`)."""
    refused = service.metrics.refused
    gate = Middleware(
        AuthMiddleware,
        token=token,
        public_names=public_names,
        on_refused=lambda reason: refused.labels(reason).inc(),
    )
    app = Starlette(
        routes=[*ROUTES, *extra_routes],
        middleware=[gate],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=_lifespan,
    )
    app.state.service = service
    app.state.manage_service = manage_service
    app.state.openapi = openapi_document(_version())
    return app
