"""One cached form for both answer shapes: the completed (non-stream) response.

A streamed miss is assembled into the response the same request would have got without
``stream`` (`assemble_chat`, `assemble_completion`), and a hit is replayed as a stream
when the caller streams (`replay_chat_stream`, `replay_completion_stream`). Storing the
completed response rather than the chunk list keeps one entry per request whichever way
it was first asked, and chunk boundaries carry no meaning worth keeping.

Replayed streams have the engine shape (`models.engine.Engine.chat_stream`): the last
chunk carries ``usage`` with empty ``choices``; the gateway's stream shaping drops it
when the caller did not ask for usage, exactly as for a live stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any, cast

from serve.openai_types import (
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChunkChoice,
    ChunkDelta,
    Completion,
    CompletionChoice,
    Usage,
)

__all__ = [
    "ChatStreamAssembler",
    "CompletionStreamAssembler",
    "assemble_chat",
    "assemble_completion",
    "replay_chat_stream",
    "replay_completion_stream",
]


def _chunk(completion: ChatCompletion, choices: list[ChunkChoice]) -> ChatCompletionChunk:
    chunk: dict[str, Any] = {
        "id": completion["id"],
        "object": "chat.completion.chunk",
        "created": completion["created"],
        "model": completion["model"],
        "choices": choices,
    }
    if completion.get("system_fingerprint") is not None:
        chunk["system_fingerprint"] = completion["system_fingerprint"]
    return cast(ChatCompletionChunk, chunk)


async def replay_chat_stream(completion: ChatCompletion) -> AsyncIterator[ChatCompletionChunk]:
    """Per choice: the role, then content / refusal / tool calls, then the finish reason."""
    for choice in completion["choices"]:
        index, message = choice["index"], choice["message"]
        yield _chunk(
            completion,
            [
                {
                    "index": index,
                    "delta": {"role": "assistant", "content": ""},
                    "finish_reason": None,
                }
            ],
        )
        delta: ChunkDelta = {}
        if message.get("content"):
            delta["content"] = message["content"]
        if message.get("refusal"):
            delta["refusal"] = message["refusal"]
        if message.get("tool_calls"):
            delta["tool_calls"] = [
                {"index": i, **call} for i, call in enumerate(message["tool_calls"])
            ]
        if delta or choice.get("logprobs") is not None:
            body: ChunkChoice = {"index": index, "delta": delta, "finish_reason": None}
            if choice.get("logprobs") is not None:
                body["logprobs"] = choice["logprobs"]
            yield _chunk(completion, [body])
        yield _chunk(
            completion, [{"index": index, "delta": {}, "finish_reason": choice["finish_reason"]}]
        )
    final = _chunk(completion, [])
    final["usage"] = cast(Usage, dict(completion["usage"]))
    yield final


async def replay_completion_stream(completion: Completion) -> AsyncIterator[Completion]:
    """One chunk per choice (text and finish reason), then the usage chunk."""
    for choice in completion["choices"]:
        chunk = {key: value for key, value in completion.items() if key != "usage"}
        chunk["choices"] = [dict(choice)]
        yield cast(Completion, chunk)
    final: dict[str, Any] = {key: value for key, value in completion.items() if key != "choices"}
    final["choices"] = []
    yield cast(Completion, final)


class _ChoiceParts:
    def __init__(self) -> None:
        self.content: list[str] = []
        self.refusal: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.logprobs: dict[str, list[Any]] | None = None
        self.finish_reason: str | None = None

    def add(self, choice: ChunkChoice) -> None:
        delta = choice.get("delta") or {}
        if delta.get("content"):
            self.content.append(str(delta["content"]))
        if delta.get("refusal"):
            self.refusal.append(str(delta["refusal"]))
        for call in delta.get("tool_calls") or []:
            self._add_call(call)
        logprobs = cast(dict[str, Any] | None, choice.get("logprobs"))
        if logprobs:
            merged = self.logprobs if self.logprobs is not None else {}
            for key, items in logprobs.items():
                if items:
                    merged.setdefault(key, []).extend(items)
            self.logprobs = merged
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]

    def _add_call(self, call: dict[str, Any]) -> None:
        slot = self.tool_calls.setdefault(
            int(call.get("index", len(self.tool_calls))),
            {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
        )
        if call.get("id"):
            slot["id"] = call["id"]
        if call.get("type"):
            slot["type"] = call["type"]
        function = call.get("function") or {}
        slot["function"]["name"] += function.get("name") or ""
        slot["function"]["arguments"] += function.get("arguments") or ""

    def choice(self, index: int) -> ChatChoice | None:
        if self.finish_reason is None:
            return None
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(self.content)
            if self.content or not (self.tool_calls or self.refusal)
            else None,
            "refusal": "".join(self.refusal) if self.refusal else None,
        }
        if self.tool_calls:
            message["tool_calls"] = [self.tool_calls[i] for i in sorted(self.tool_calls)]
        logprobs = None
        if self.logprobs is not None:
            logprobs = {"content": None, "refusal": None, **self.logprobs}
        return cast(
            ChatChoice,
            {
                "index": index,
                "message": message,
                "finish_reason": self.finish_reason,
                "logprobs": logprobs,
            },
        )


class ChatStreamAssembler:
    """Builds the non-stream response while a stream passes through.

    Each chunk is read when added (strings are copied out, nothing is kept by reference),
    so whatever later stages do to the chunk dicts cannot change what gets cached.
    """

    def __init__(self) -> None:
        self._head: dict[str, Any] | None = None
        self._parts: dict[int, _ChoiceParts] = {}
        self._usage: Usage | None = None
        self._fingerprint: str | None = None

    def add(self, chunk: ChatCompletionChunk) -> None:
        if self._head is None:
            self._head = {"id": chunk["id"], "created": chunk["created"], "model": chunk["model"]}
        self._fingerprint = cast(str | None, chunk.get("system_fingerprint")) or self._fingerprint
        usage = chunk.get("usage")
        if usage:
            self._usage = cast(Usage, dict(usage))
        for choice in chunk["choices"]:
            self._parts.setdefault(choice["index"], _ChoiceParts()).add(choice)

    def result(self) -> ChatCompletion | None:
        """The response; None when the stream is incomplete (a choice without a finish
        reason, or no usage chunk): such a stream is never stored."""
        if self._head is None or self._usage is None or not self._parts:
            return None
        choices = [self._parts[i].choice(i) for i in sorted(self._parts)]
        if any(choice is None for choice in choices):
            return None
        completion: dict[str, Any] = {
            **self._head,
            "object": "chat.completion",
            "choices": choices,
            "usage": self._usage,
        }
        if self._fingerprint is not None:
            completion["system_fingerprint"] = self._fingerprint
        return cast(ChatCompletion, completion)


class CompletionStreamAssembler:
    """As `ChatStreamAssembler`, for the legacy completions endpoint."""

    def __init__(self) -> None:
        self._head: dict[str, Any] | None = None
        self._texts: dict[int, list[str]] = {}
        self._finish: dict[int, str | None] = {}
        self._usage: Usage | None = None
        self._storable = True

    def add(self, chunk: Completion) -> None:
        if self._head is None:
            self._head = {k: v for k, v in chunk.items() if k not in ("choices", "usage")}
        usage = chunk.get("usage")
        if usage:
            self._usage = cast(Usage, dict(usage))
        for choice in chunk["choices"]:
            if choice.get("logprobs") is not None:
                self._storable = False  # legacy logprobs don't merge reliably
            index = choice["index"]
            self._texts.setdefault(index, []).append(choice.get("text") or "")
            self._finish[index] = choice.get("finish_reason") or self._finish.get(index)

    def result(self) -> Completion | None:
        if not self._storable or self._head is None or self._usage is None or not self._texts:
            return None
        if not all(self._finish.values()):
            return None
        choices: list[CompletionChoice] = [
            {
                "index": i,
                "text": "".join(self._texts[i]),
                "finish_reason": self._finish[i],
                "logprobs": None,
            }
            for i in sorted(self._texts)
        ]
        return cast(Completion, {**self._head, "choices": choices, "usage": self._usage})


def assemble_chat(chunks: Iterable[ChatCompletionChunk]) -> ChatCompletion | None:
    """The non-stream response for a complete chat stream, else None."""
    assembler = ChatStreamAssembler()
    for chunk in chunks:
        assembler.add(chunk)
    return assembler.result()


def assemble_completion(chunks: Iterable[Completion]) -> Completion | None:
    """The non-stream response for a complete completions stream, else None."""
    assembler = CompletionStreamAssembler()
    for chunk in chunks:
        assembler.add(chunk)
    return assembler.result()
