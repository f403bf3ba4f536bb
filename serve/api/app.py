"""The FastAPI application: OpenAI routes, health, admin; errors mapped in one place."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from serve.api import admin, sse
from serve.api.context import RequestContext, request_id
from serve.errors import GatewayError, InternalError, InvalidRequest, NotFound, error_body
from serve.gateway import Gateway
from serve.openai_requests import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    parse,
)

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


async def stream_response(chunks: AsyncIterator[Any], request: Request) -> Response:
    """Pull the first chunk before answering, so early failures get a proper HTTP status."""
    iterator = aiter(chunks)
    first = await anext(iterator, None)
    if first is None:
        raise InternalError("The model returned an empty stream.")
    return StreamingResponse(
        sse.encode(first, iterator, request_id(request.scope)),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


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
        principal = await gateway.authenticate(request.headers.get("authorization"))
        body = parse(ChatCompletionRequest, await read_json(request))
        if body.stream:
            return await stream_response(gateway.chat_stream(principal, body), request)
        return json_response(await gateway.chat(principal, body))

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        principal = await gateway.authenticate(request.headers.get("authorization"))
        body = parse(CompletionRequest, await read_json(request))
        if body.stream:
            return await stream_response(gateway.completion_stream(principal, body), request)
        return json_response(await gateway.completion(principal, body))

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> Response:
        principal = await gateway.authenticate(request.headers.get("authorization"))
        body = parse(EmbeddingRequest, await read_json(request))
        return json_response(await gateway.embeddings(principal, body))

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
    return app


def with_context(app: FastAPI, gateway: Gateway, under_serve: bool = True) -> RequestContext:
    ingress = gateway.config.ingress
    return RequestContext(
        app, ingress.max_body_bytes, ingress.max_ongoing_requests, emit_request_id=not under_serve
    )
