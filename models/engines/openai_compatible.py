"""Engine for any server that speaks the OpenAI API (an external vLLM, a mock upstream).

Runs inside the ingress: it is one HTTP call, and a Serve handle hop would cost more
than the call itself (see docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import orjson

from models.engine import Request
from serve.errors import (
    GatewayError,
    InvalidRequest,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)
from serve.openai_types import ChatCompletion, ChatCompletionChunk, Completion, EmbeddingList


class OpenAICompatibleEngine:
    def __init__(
        self,
        public_name: str,
        base_url: str,
        upstream_model: str,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        max_connections: int = 512,
    ) -> None:
        self._public_name = public_name
        self._upstream_model = upstream_model
        headers = {"content-type": "application/json"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(5.0, timeout_s)),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )

    def _body(self, request: Request) -> bytes:
        return orjson.dumps({**request, "model": self._upstream_model})

    async def _post(self, path: str, request: Request, items: str) -> dict[str, Any]:
        try:
            response = await self._client.post(path, content=self._body(request))
        except httpx.TimeoutException:
            raise UpstreamTimeout("The model backend timed out.") from None
        except httpx.HTTPError:
            raise UpstreamError("The model backend could not be reached.") from None
        if response.status_code != 200:
            raise _status_error(response.status_code, response.content)
        try:
            payload = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise UpstreamError("The model backend answered with malformed JSON.") from None
        # The gateway indexes into these lists; a 200 without them is the backend's fault.
        if not isinstance(payload, dict) or not _list_of_dicts(payload.get(items)):
            raise UpstreamError("The model backend answered with an unexpected body.")
        payload["model"] = self._public_name
        return payload

    async def _stream(self, path: str, request: Request) -> AsyncIterator[dict[str, Any]]:
        try:
            async with self._client.stream("POST", path, content=self._body(request)) as response:
                if response.status_code != 200:
                    raise _status_error(response.status_code, await response.aread())
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    try:
                        chunk = orjson.loads(data)
                    except orjson.JSONDecodeError:
                        raise UpstreamError(
                            "The model backend sent a malformed stream event."
                        ) from None
                    if not isinstance(chunk, dict) or "error" in chunk:
                        raise UpstreamError("The model backend failed during the stream.")
                    if not _list_of_dicts(chunk.get("choices")):
                        raise UpstreamError("The model backend sent an unexpected stream event.")
                    chunk["model"] = self._public_name
                    yield chunk
        except httpx.TimeoutException:
            raise UpstreamTimeout("The model backend timed out.") from None
        except httpx.HTTPError:
            raise UpstreamError("The model backend connection failed.") from None

    async def chat(self, request: Request) -> ChatCompletion:
        return cast(ChatCompletion, await self._post("/chat/completions", request, "choices"))

    async def chat_stream(self, request: Request) -> AsyncIterator[ChatCompletionChunk]:
        # Always ask for usage: the gateway needs it; it drops the chunk if the caller didn't ask.
        request = {**request, "stream": True, "stream_options": {"include_usage": True}}
        async for chunk in self._stream("/chat/completions", request):
            yield cast(ChatCompletionChunk, chunk)

    async def completion(self, request: Request) -> Completion:
        return cast(Completion, await self._post("/completions", request, "choices"))

    async def completion_stream(self, request: Request) -> AsyncIterator[Completion]:
        request = {**request, "stream": True, "stream_options": {"include_usage": True}}
        async for chunk in self._stream("/completions", request):
            yield cast(Completion, chunk)

    async def embeddings(self, request: Request) -> EmbeddingList:
        return cast(EmbeddingList, await self._post("/embeddings", request, "data"))

    async def ready(self) -> bool:
        return True  # a remote service: its health shows per request (and in the breaker, later)

    async def aclose(self) -> None:
        await self._client.aclose()


def _list_of_dicts(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


def _status_error(status: int, content: bytes) -> GatewayError:
    """Map an upstream error status; pass 4xx messages through, hide 5xx details."""
    message = "The model backend rejected the request."
    try:
        body = orjson.loads(content)
        message = str(body["error"]["message"])[:500]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        pass
    if status == 429:
        return RateLimited(
            "The model backend is rate limiting requests.", code="upstream_rate_limited"
        )
    if status in (400, 404, 413, 422):
        return InvalidRequest(message, code="upstream_invalid_request")
    return UpstreamError(f"The model backend failed (HTTP {status}).")
