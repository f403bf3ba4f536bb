"""An `Engine` that lives in another Serve deployment, reached through its handle."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from ray.exceptions import RayTaskError
from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle

from guardrails.spans import Span
from models.engine import Request
from serve.errors import GatewayError, RateLimited, UpstreamError
from serve.openai_types import ChatCompletion, ChatCompletionChunk, Completion, EmbeddingList

log = logging.getLogger("raygate.remote_engine")


def _translate(exc: BaseException) -> GatewayError:
    if isinstance(exc, GatewayError):
        return exc
    cause = getattr(exc, "cause", None)
    if isinstance(exc, RayTaskError) and isinstance(cause, GatewayError):
        return cause
    if isinstance(exc, BackPressureError):
        return RateLimited(
            "The model is at capacity; retry shortly.",
            code="model_at_capacity",
            headers={"retry-after": "1"},
        )
    log.warning("model deployment call failed: %s", type(exc).__name__)
    return UpstreamError("The model deployment failed to answer.")


class RemoteEngine:
    def __init__(self, handle: DeploymentHandle[Any]) -> None:
        self._handle = handle
        self._streaming = handle.options(stream=True)

    def _for(self, request: Request, stream: bool) -> DeploymentHandle[Any]:
        """``<model>:<adapter>`` asks for a LoRA adapter: Ray Serve's multiplexing routes it
        to a replica that has (or loads) that adapter."""
        handle = self._streaming if stream else self._handle
        model = str(request.get("model", ""))
        if ":" in model:
            return handle.options(multiplexed_model_id=model)
        return handle

    async def _call(self, method: str, request: Request) -> Any:
        try:
            return await getattr(self._for(request, False), method).remote(request)
        except Exception as exc:
            raise _translate(exc) from None

    async def _stream(self, method: str, request: Request) -> AsyncIterator[Any]:
        try:
            async for item in getattr(self._for(request, True), method).remote(request):
                yield item
        except GatewayError:
            raise
        except Exception as exc:
            raise _translate(exc) from None

    async def chat(self, request: Request) -> ChatCompletion:
        result: ChatCompletion = await self._call("chat", request)
        return result

    async def chat_stream(self, request: Request) -> AsyncIterator[ChatCompletionChunk]:
        async for chunk in self._stream("chat_stream", request):
            yield chunk

    async def completion(self, request: Request) -> Completion:
        result: Completion = await self._call("completion", request)
        return result

    async def completion_stream(self, request: Request) -> AsyncIterator[Completion]:
        async for chunk in self._stream("completion_stream", request):
            yield chunk

    async def embeddings(self, request: Request) -> EmbeddingList:
        result: EmbeddingList = await self._call("embeddings", request)
        return result

    async def ready(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self._handle.ready.remote(), timeout=5))
        except Exception:
            return False

    async def aclose(self) -> None:
        return None


class RemoteNer:
    """The guardrails NER tier behind its deployment handle (`serve.guard_stage.NerTier`)."""

    def __init__(self, handle: DeploymentHandle[Any]) -> None:
        self._handle = handle

    async def detect_batch(self, texts: Sequence[str]) -> list[list[Span]]:
        result: list[list[Span]] = await self._handle.detect_batch.remote(list(texts))
        return result
