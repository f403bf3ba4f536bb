"""Mixins for engines that serve only some tasks: the rest answer a clear 400."""

from __future__ import annotations

from collections.abc import AsyncIterator

from models.engine import Request
from serve.errors import InvalidRequest
from serve.openai_types import ChatCompletion, ChatCompletionChunk, Completion, EmbeddingList


def _unsupported(task: str) -> InvalidRequest:
    return InvalidRequest(
        f"This model does not support {task}.", param="model", code="unsupported_task"
    )


class NoGeneration:
    async def chat(self, request: Request) -> ChatCompletion:
        raise _unsupported("chat completions")

    async def chat_stream(self, request: Request) -> AsyncIterator[ChatCompletionChunk]:
        raise _unsupported("chat completions")
        yield  # pragma: no cover - makes this an async generator

    async def completion(self, request: Request) -> Completion:
        raise _unsupported("completions")

    async def completion_stream(self, request: Request) -> AsyncIterator[Completion]:
        raise _unsupported("completions")
        yield  # pragma: no cover


class NoEmbeddings:
    async def embeddings(self, request: Request) -> EmbeddingList:
        raise _unsupported("embeddings")
