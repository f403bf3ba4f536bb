"""The FastAPI application: OpenAI routes, health, admin; errors mapped in one place."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from serve.api import admin, audit_routes, model_routes, sse
from serve.api.context import RequestContext, request_id
from serve.cache import CacheMode
from serve.call import PROJECT_HEADER, Call
from serve.errors import GatewayError, InternalError, InvalidRequest, NotFound, error_body
from serve.gateway import Gateway, Served, ServedStream
from serve.openai_requests import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    parse,
)
from serve.record import Endpoint
from serve.shaping import CACHE_HEADER

log = logging.getLogger("raygate.api")

JSON = "application/json"


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type=JSON, headers=headers)


async def read_json(request: Request) -> Any:
    body = await request.body()
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest(
            "We could not parse the JSON body of your request. "
            "The request body must be valid JSON.",
            code="invalid_json",
        ) from None


def stream_response(served: ServedStream[Any], request: Request) -> Response:
    """The first chunk arrived before this (so early failures got a proper HTTP status)."""
    return StreamingResponse(
        sse.encode(served.first, served.rest, request_id(request.scope)),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no", **served.headers},
    )


def served_response(served: Served[Any]) -> Response:
    return json_response(served.body, headers=served.headers)


def cache_mode(request: Request) -> CacheMode:
    """``x-raygate-cache: bypass`` (don't read, refresh) or ``no-store`` (leave no trace)."""
    value = request.headers.get(CACHE_HEADER)
    if value is None:
        return CacheMode.USE
    try:
        return CacheMode(value.strip().lower())
    except ValueError:
        modes = ", ".join(m.value for m in CacheMode)
        raise InvalidRequest(
            f"Invalid {CACHE_HEADER} header {value[:32]!r}; use one of: {modes}.",
            param=CACHE_HEADER,
            code="invalid_header",
        ) from None


@asynccontextmanager
async def recorded(gateway: Gateway, request: Request, endpoint: Endpoint) -> AsyncIterator[Call]:
    """One `Call` per request; its record is written however the request ends (a stream's
    when the stream ends: the gateway defers it)."""
    call = Call(
        request_id(request.scope),
        endpoint,
        observers=gateway.observers,
        project=Call.project_of(request.headers.get(PROJECT_HEADER)),
        headers=request.headers,
    )
    if gateway.telemetry is not None:
        call.trace = gateway.telemetry.start(endpoint, request.headers, call.request_id)
        call.trace_id = call.trace.trace_id
    try:
        call.cache_mode = cache_mode(request)
        yield call
    except GatewayError as exc:
        call.finish(exc.status, "error" if call.backend_called else "rejected", exc.code)
        raise
    except asyncio.CancelledError:
        call.finish(499, "cancelled", "client_closed_request")
        raise
    except Exception:
        call.finish(500, "error", "internal_error")
        raise
    else:
        if not call.deferred:
            call.finish(200, "ok")


def create_app(gateway: Gateway) -> FastAPI:
    app = FastAPI(title="raygate", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(GatewayError)
    async def _gateway_error(request: Request, exc: GatewayError) -> Response:
        return json_response(exc.body(), exc.status, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            err: GatewayError = NotFound(
                f"Unknown request URL: {request.method} {request.url.path}.", code="unknown_url"
            )
            return json_response(err.body(), 404)
        body = error_body(str(exc.detail), "invalid_request_error", None, None)
        return json_response(body, exc.status_code)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> Response:
        rid = request_id(request.scope)
        log.exception("internal error (request %s)", rid)
        err = InternalError(f"The server had an error processing your request (request {rid}).")
        return json_response(err.body(), 500)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        async with recorded(gateway, request, "chat") as call:
            call.principal = await gateway.authenticate(request.headers.get("authorization"))
            body = parse(ChatCompletionRequest, await read_json(request))
            call.stream = bool(body.stream)
            if body.stream:
                stream = await gateway.chat_stream(call.principal, body, call)
                return stream_response(stream, request)
            return served_response(await gateway.chat(call.principal, body, call))

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        async with recorded(gateway, request, "completions") as call:
            call.principal = await gateway.authenticate(request.headers.get("authorization"))
            body = parse(CompletionRequest, await read_json(request))
            call.stream = bool(body.stream)
            if body.stream:
                stream = await gateway.completion_stream(call.principal, body, call)
                return stream_response(stream, request)
            return served_response(await gateway.completion(call.principal, body, call))

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> Response:
        async with recorded(gateway, request, "embeddings") as call:
            call.principal = await gateway.authenticate(request.headers.get("authorization"))
            body = parse(EmbeddingRequest, await read_json(request))
            return served_response(await gateway.embeddings(call.principal, body, call))

    @app.get("/v1/models")
    async def list_models(request: Request) -> Response:
        principal = await gateway.authenticate(request.headers.get("authorization"))
        return json_response({"object": "list", "data": gateway.visible_models(principal)})

    @app.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str, request: Request) -> Response:
        principal = await gateway.authenticate(request.headers.get("authorization"))
        for entry in gateway.visible_models(principal):
            if entry["id"] == model_id:
                return json_response(entry)
        raise NotFound(f"The model '{model_id}' does not exist.", param="model")

    @app.get("/healthz")
    async def healthz() -> Response:
        return json_response({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> Response:
        checks = await gateway.readiness()
        ready = all(checks.values())
        return json_response({"ready": ready, "checks": checks}, 200 if ready else 503)

    admin.add_routes(app, gateway, read_json, json_response)
    model_routes.add_routes(app, gateway, read_json, json_response)
    if gateway.audit is not None:
        audit_routes.add_routes(app, gateway.audit, gateway.authorize_audit)
    return app


def with_context(app: FastAPI, gateway: Gateway, under_serve: bool = True) -> RequestContext:
    ingress = gateway.config.ingress
    return RequestContext(
        app, ingress.max_body_bytes, ingress.max_ongoing_requests, emit_request_id=not under_serve
    )
