"""The cache stage of the request path: exact first, then semantic, one status out.

The gateway calls ``lookup`` after admission and input guardrails (cached answers still
go through output guardrails), answers from ``lookup.hit`` when there is one (as a stream
with `serve.cache.replay.replay_chat_stream` when the caller streams), and otherwise calls
the model and hands the answer to ``store`` - or wraps the engine stream in
``record_chat_stream``, which stores the assembled answer once the stream completed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from serve.cache.exact import ExactCache
from serve.cache.keys import Endpoint
from serve.cache.outcome import CacheMode, CacheStatus, Lookup
from serve.cache.replay import ChatStreamAssembler, CompletionStreamAssembler
from serve.cache.semantic import SemanticCache
from serve.openai_types import ChatCompletionChunk, Completion
from serve.streams import aclose_quietly

__all__ = ["ResponseCache"]

# When neither layer hit, the status that says most about why.
_PRECEDENCE = (CacheStatus.MISS, CacheStatus.BYPASS, CacheStatus.UNCACHEABLE)


@dataclass(frozen=True, slots=True)
class _Tickets:
    exact: Lookup | None
    semantic: Lookup | None


class ResponseCache:
    def __init__(
        self, exact: ExactCache | None = None, semantic: SemanticCache | None = None
    ) -> None:
        self.exact = exact
        self.semantic = semantic

    async def lookup(
        self,
        scope: str,
        request: Mapping[str, Any],
        *,
        endpoint: Endpoint = "chat",
        mode: CacheMode = CacheMode.USE,
    ) -> Lookup:
        """``scope`` is the caller's team; ``request`` the engine request (canonical model
        name, so aliases share entries). Semantic lookups are for chat only. On a miss,
        ``ticket`` is None when no layer would store the answer."""
        exact = None
        if self.exact is not None:
            exact = await self.exact.lookup(scope, request, endpoint=endpoint, mode=mode)
            if exact.hit is not None:
                return exact
        semantic = None
        if self.semantic is not None and endpoint == "chat":
            semantic = await self.semantic.lookup(scope, request, mode=mode)
            if semantic.hit is not None:
                return semantic
        statuses = {layer.status for layer in (exact, semantic) if layer is not None}
        status = next((s for s in _PRECEDENCE if s in statuses), CacheStatus.UNCACHEABLE)
        similarity = semantic.similarity if semantic is not None else None
        exact = exact if exact is not None and exact.ticket is not None else None
        semantic = semantic if semantic is not None and semantic.ticket is not None else None
        # ticket None: nothing will be stored, so the caller need not record the answer.
        tickets = _Tickets(exact, semantic) if exact or semantic else None
        return Lookup(status, similarity=similarity, ticket=tickets)

    async def store(self, lookup: Lookup, response: Mapping[str, Any]) -> None:
        """Store a fresh answer in every layer that may hold it (no-op after a hit)."""
        tickets = lookup.ticket
        if not isinstance(tickets, _Tickets):
            return
        if self.exact is not None and tickets.exact is not None:
            await self.exact.store(tickets.exact, response)
        if self.semantic is not None and tickets.semantic is not None:
            await self.semantic.store(tickets.semantic, response)

    async def record_chat_stream(
        self, lookup: Lookup, chunks: AsyncIterator[ChatCompletionChunk]
    ) -> AsyncIterator[ChatCompletionChunk]:
        """Pass an engine stream through; store the answer if the stream completes.

        Wrap the engine's stream (it always carries the usage chunk), before any stage
        that drops or edits chunks. A stream the client abandons is never stored.
        """
        assembler = ChatStreamAssembler()
        try:
            async for chunk in chunks:
                assembler.add(chunk)
                yield chunk
        finally:
            await aclose_quietly(chunks)
        completion = assembler.result()
        if completion is not None:
            await self.store(lookup, completion)

    async def record_completion_stream(
        self, lookup: Lookup, chunks: AsyncIterator[Completion]
    ) -> AsyncIterator[Completion]:
        """As `record_chat_stream`, for the legacy completions endpoint."""
        assembler = CompletionStreamAssembler()
        try:
            async for chunk in chunks:
                assembler.add(chunk)
                yield chunk
        finally:
            await aclose_quietly(chunks)
        completion = assembler.result()
        if completion is not None:
            await self.store(lookup, completion)
