"""The `Engine` seam: anything that can answer OpenAI requests for one model.

Implementations: llama.cpp (CPU, `models.engines.llama_cpp`), MiniLM embeddings
(`models.engines.minilm_engine`), any OpenAI-compatible HTTP server
(`models.engines.openai_compatible`), and a Serve deployment reached through its handle
(`serve.remote_engine`). The vLLM engine plugs in behind the same protocol.

Requests are validated OpenAI request dicts; ``model`` in every answer is set by the
engine to the public model id it was asked for.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol, runtime_checkable

from serve.openai_types import ChatCompletion, ChatCompletionChunk, Completion, EmbeddingList

Request = dict[str, Any]


@runtime_checkable
class Engine(Protocol):
    async def chat(self, request: Request) -> ChatCompletion: ...

    def chat_stream(self, request: Request) -> AsyncIterator[ChatCompletionChunk]:
        """Chunks in order; the last one carries ``usage`` (choices empty)."""
        ...

    async def completion(self, request: Request) -> Completion: ...

    def completion_stream(self, request: Request) -> AsyncIterator[Completion]: ...

    async def embeddings(self, request: Request) -> EmbeddingList: ...

    async def ready(self) -> bool: ...

    async def aclose(self) -> None: ...
