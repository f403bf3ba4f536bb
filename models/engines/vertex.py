"""Engine for Gemini (chat) and text-embedding models on Google Vertex AI.

Speaks Vertex's REST API directly: one shared keep-alive `httpx.AsyncClient`, OAuth
tokens from `google_credentials` (service account, ADC, Workload Identity), and the pure
translations in `gemini_format` / `vertex_embedding_format`. Runs inside the ingress
like the OpenAI-compatible engine: it is one HTTP call.

Errors follow the house rule: a 400 from Google is the caller's mistake and its message
passes through; auth, quota-project and 404 failures are our configuration, reported as
a 502 that names no project or key; 5xx details are never shown. The exception class
tells a retry layer what to do: RateLimited, UpstreamError and UpstreamTimeout are worth
retrying (or failing over), InvalidRequest is not.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import AsyncIterator
from typing import Any, cast
from urllib.parse import quote

import httpx
import orjson
from google.auth.credentials import Credentials

from models.engine import Request
from models.engines import gemini_format, vertex_embedding_format
from models.engines.google_credentials import GoogleTokenSource
from serve.config import VertexBackend
from serve.errors import (
    GatewayError,
    InvalidRequest,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)
from serve.openai_types import ChatCompletion, ChatCompletionChunk, Completion, EmbeddingList

_RETRY_DELAY = re.compile(r"^\d+(?:\.\d+)?s$")
_EMBEDDING_CONCURRENCY = 8  # :predict calls in flight for one large embeddings request


def default_endpoint(location: str) -> str:
    if location == "global":
        return "https://aiplatform.googleapis.com"
    return f"https://{location}-aiplatform.googleapis.com"


class VertexEngine:
    def __init__(
        self,
        public_name: str,
        backend: VertexBackend,
        *,
        credentials: Credentials | None = None,
    ) -> None:
        self._public_name = public_name
        self._model = backend.model
        self._path = "/v1/projects/{}/locations/{}/publishers/google/models/{}".format(
            *(quote(part, safe="@") for part in (backend.project, backend.location, backend.model))
        )
        self._tokens = GoogleTokenSource(
            credentials,
            credentials_file=backend.credentials_file,
            timeout_s=min(30.0, backend.timeout_s),
        )
        self._client = httpx.AsyncClient(
            base_url=(backend.endpoint or default_endpoint(backend.location)).rstrip("/"),
            headers={"content-type": "application/json", "user-agent": "raygate"},
            timeout=httpx.Timeout(backend.timeout_s, connect=min(5.0, backend.timeout_s)),
            limits=httpx.Limits(
                max_connections=backend.max_connections,
                max_keepalive_connections=backend.max_connections,
            ),
        )

    async def chat(self, request: Request) -> ChatCompletion:
        body = orjson.dumps(gemini_format.chat_request(request))
        payload = await self._call(":generateContent", body)
        return gemini_format.chat_response(payload, self._public_name)

    async def chat_stream(self, request: Request) -> AsyncIterator[ChatCompletionChunk]:
        body = orjson.dumps(gemini_format.chat_request(request))
        translator = gemini_format.ChatStreamTranslator(self._public_name)
        response = await self._send(":streamGenerateContent?alt=sse", body, stream=True)
        try:
            if response.status_code != 200:
                raise _status_error(response, await response.aread())
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                try:
                    event = orjson.loads(line[5:])
                except orjson.JSONDecodeError:
                    raise UpstreamError(
                        "The model backend sent a malformed stream event."
                    ) from None
                if not isinstance(event, dict):
                    raise UpstreamError("The model backend sent an unexpected stream event.")
                for chunk in translator.feed(event):
                    yield chunk
        except httpx.TimeoutException:
            raise UpstreamTimeout("The model backend timed out.") from None
        except httpx.HTTPError:
            raise UpstreamError("The model backend connection failed.") from None
        finally:
            await response.aclose()
        yield translator.close()

    async def completion(self, request: Request) -> Completion:
        raise _no_completions()

    async def completion_stream(self, request: Request) -> AsyncIterator[Completion]:
        raise _no_completions()
        yield  # pragma: no cover - makes this an async generator

    async def embeddings(self, request: Request) -> EmbeddingList:
        instances, parameters = vertex_embedding_format.embedding_instances(request)
        size = vertex_embedding_format.max_instances(self._model)
        gate = asyncio.Semaphore(_EMBEDDING_CONCURRENCY)

        async def predict(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
            body = orjson.dumps(vertex_embedding_format.predict_body(batch, parameters))
            async with gate:
                payload = await self._call(":predict", body)
            predictions = payload.get("predictions")
            if not isinstance(predictions, list) or len(predictions) != len(batch):
                raise UpstreamError("The model backend answered with an unexpected body.")
            return predictions

        batches = [instances[i : i + size] for i in range(0, len(instances), size)]
        tasks = [asyncio.ensure_future(predict(batch)) for batch in batches]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:  # one batch failed: the answer is lost, stop the others
                task.cancel()
            raise
        return vertex_embedding_format.embedding_response(
            [p for batch in results for p in batch],
            self._public_name,
            request.get("encoding_format", "float"),
        )

    async def ready(self) -> bool:
        return True  # a remote service: its health shows per request

    async def aclose(self) -> None:
        await self._client.aclose()
        self._tokens.close()

    async def _call(self, method: str, body: bytes) -> dict[str, Any]:
        response = await self._send(method, body, stream=False)
        if response.status_code != 200:
            raise _status_error(response, response.content)
        try:
            payload = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise UpstreamError("The model backend answered with malformed JSON.") from None
        if not isinstance(payload, dict):
            raise UpstreamError("The model backend answered with an unexpected body.")
        return payload

    async def _send(self, method: str, body: bytes, *, stream: bool) -> httpx.Response:
        """POST with a fresh token; a 401 (token revoked early) refreshes and retries once."""
        for attempt in range(2):
            headers = await self._tokens.headers()
            request = self._client.build_request(
                "POST", self._path + method, content=body, headers=headers
            )
            try:
                response = await self._client.send(request, stream=stream)
            except httpx.TimeoutException:
                raise UpstreamTimeout("The model backend timed out.") from None
            except httpx.HTTPError:
                raise UpstreamError("The model backend could not be reached.") from None
            if response.status_code != 401 or attempt == 1:
                return response
            await response.aclose()
            self._tokens.invalidate(headers)
        raise AssertionError("unreachable")  # pragma: no cover


def _no_completions() -> InvalidRequest:
    return InvalidRequest(
        "This model does not support completions; use chat completions.",
        param="model",
        code="unsupported_task",
    )


def _status_error(response: httpx.Response, content: bytes) -> GatewayError:
    """Map a Google error answer (``{"error": {"code", "message", "status", "details"}}``)."""
    status = response.status_code
    error = _google_error(content)
    if status in (400, 413, 422):
        message = str(error.get("message") or "The model backend rejected the request.")
        return InvalidRequest(message[:500], code="upstream_invalid_request")
    if status == 429:
        retry_after = response.headers.get("retry-after") or _retry_delay(error)
        return RateLimited(
            "The model backend is rate limiting requests.",
            code="upstream_rate_limited",
            headers={"retry-after": retry_after} if retry_after else None,
        )
    if status in (401, 403):
        # Our credentials, not the caller's: nothing about them goes back.
        return UpstreamError(
            "The gateway could not authenticate to the model backend.",
            code="upstream_auth_failed",
        )
    if status == 404:
        return UpstreamError("The model backend does not serve the configured model.")
    if status == 504:
        return UpstreamTimeout("The model backend timed out.")
    return UpstreamError(f"The model backend failed (HTTP {status}).")


def _google_error(content: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return {}
    if isinstance(body, list) and body:  # streamGenerateContent without alt=sse
        body = body[0]
    error = body.get("error") if isinstance(body, dict) else None
    return cast(dict[str, Any], error) if isinstance(error, dict) else {}


def _retry_delay(error: dict[str, Any]) -> str | None:
    """Seconds from a ``google.rpc.RetryInfo`` detail (``"retryDelay": "2s"``), rounded up."""
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("@type", "").endswith("google.rpc.RetryInfo"):
            delay = str(detail.get("retryDelay", ""))
            if _RETRY_DELAY.match(delay):
                return str(math.ceil(float(delay[:-1])))
    return None
