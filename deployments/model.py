"""A self-hosted model deployment: one `Engine` per replica, exposed to the ingress."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from models.engine import Request
from models.engines.factory import create_engine
from serve.config import ModelConfig
from serve.openai_types import ChatCompletion, ChatCompletionChunk, Completion, EmbeddingList


class ModelDeployment:
    def __init__(self, model: dict[str, Any]) -> None:
        self._engine = create_engine(ModelConfig.model_validate(model))

    async def chat(self, request: Request) -> ChatCompletion:
        return await self._engine.chat(request)

    async def chat_stream(self, request: Request) -> AsyncIterator[ChatCompletionChunk]:
        async for chunk in self._engine.chat_stream(request):
            yield chunk

    async def completion(self, request: Request) -> Completion:
        return await self._engine.completion(request)

    async def completion_stream(self, request: Request) -> AsyncIterator[Completion]:
        async for chunk in self._engine.completion_stream(request):
            yield chunk

    async def embeddings(self, request: Request) -> EmbeddingList:
        return await self._engine.embeddings(request)

    async def ready(self) -> bool:
        return await self._engine.ready()
