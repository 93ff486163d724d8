"""The HTTP app (Starlette): prediction, feedback, adapters, health, metrics, OpenAPI.

``build_app(service, token=..., extra_routes=...)`` wraps a
:class:`~modelops.serving.service.ServingService`; ``extra_routes`` mounts more
Starlette routes beside these (the stored drift reports). Errors answer JSON
``{"error", "field", "request_id"}``: 4xx for bad requests, 503 while a recipe has no
adapter, 500 with no detail (the log line has it, under the request id).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from modelops.config.errors import NotFoundError
from modelops.serving.auth import AuthMiddleware
from modelops.serving.schemas import (
    RequestError,
    feedback_request,
    openapi_document,
    parse_json,
    predict_request,
)
from modelops.serving.service import ServingService

logger = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]


def _version() -> str:
    try:
        return version("modelops")
    except PackageNotFoundError:  # pragma: no cover - running from a checkout
        return "0"


def _rid(request: Request) -> str:
    return request.scope.get("state", {}).get("request_id", "-")


def _error(request: Request, status: int, message: str, field: str | None = None) -> Response:
    return JSONResponse(
        {"error": message, "field": field, "request_id": _rid(request)}, status_code=status
    )


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


def build_app(
    service: ServingService,
    *,
    token: str | None = None,
    extra_routes: Sequence[BaseRoute] = (),
    manage_service: bool = True,
) -> Starlette:
    """The app; with ``manage_service`` it starts and stops ``service`` with itself."""
    limits = service.config.limits
    metrics = service.metrics

    def timed(route: str, handler: Handler) -> Handler:
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
                metrics.requests.labels(route, str(status)).inc()
                metrics.latency.labels(route).observe(time.perf_counter() - start)

        return wrapped

    def served(request: Request) -> str:
        recipe = request.path_params["recipe"]
        if recipe not in service.shadow:
            raise RequestError(404, "recipe", f"recipe {recipe!r} is not served here")
        return recipe

    async def predict(request: Request) -> Response:
        recipe = served(request)
        with service.batcher.incoming():  # the batcher may wait for it to share a batch
            body = predict_request(
                parse_json(await _read_body(request, limits.max_body_bytes), limits), limits
            )
            try:
                adapter, future = service.batcher.submit(recipe, body.texts)
            except NotFoundError as exc:
                return _error(request, 503, str(exc), "recipe")
        probs = await asyncio.wrap_future(future)
        answer = service.answer(recipe, body, adapter, probs, _rid(request))
        logger.info(
            "request %s: %s, %d texts, adapter %s",
            _rid(request),
            recipe,
            len(body.texts),
            adapter.id,
        )
        return JSONResponse(answer)

    async def feedback(request: Request) -> Response:
        recipe = served(request)
        items = feedback_request(
            parse_json(await _read_body(request, limits.max_body_bytes), limits), limits
        )
        dropped = service.feedback(recipe, items)
        return JSONResponse(
            {"accepted": len(items) - dropped, "dropped": dropped, "request_id": _rid(request)},
            status_code=202,
        )

    async def adapters(request: Request) -> Response:
        return JSONResponse(service.adapters())

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        if service.ready():
            return JSONResponse({"status": "ready", "routes": dict(service.batcher.routes)})
        return JSONResponse(
            {
                "status": "waiting",
                "error": "not every served recipe has its adapter loaded",
                "waiting": dict(service.waiting),
            },
            status_code=503,
        )

    async def prometheus(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    document = openapi_document(_version())

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    async def request_error(request: Request, exc: RequestError) -> Response:
        return _error(request, exc.status, exc.message, exc.field)

    async def http_error(request: Request, exc: HTTPException) -> Response:
        return _error(request, exc.status_code, str(exc.detail))

    async def not_found(request: Request, exc: NotFoundError) -> Response:
        return _error(request, 404, str(exc))

    async def server_error(request: Request, exc: Exception) -> Response:
        logger.error("request %s failed", _rid(request), exc_info=exc)
        return _error(request, 500, "internal error (see the server log for this request id)")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        if manage_service:
            service.start()
        try:
            yield
        finally:
            if manage_service:
                service.stop()

    routes = [
        Route("/v1/recipes/{recipe}/predict", timed("predict", predict), methods=["POST"]),
        Route("/v1/recipes/{recipe}/feedback", timed("feedback", feedback), methods=["POST"]),
        Route("/v1/adapters", timed("adapters", adapters), methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        *extra_routes,
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(AuthMiddleware, token=token)],
        exception_handlers={
            RequestError: request_error,
            HTTPException: http_error,
            NotFoundError: not_found,
            Exception: server_error,
        },
        lifespan=lifespan,
    )
