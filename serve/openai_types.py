"""OpenAI wire objects that travel inside raygate, typed.

Responses and stream chunks are plain dicts shaped exactly as OpenAI's API (so they
cross Ray handles and get encoded to JSON without conversion); these TypedDicts give
them types. Requests are validated with pydantic in `serve.openai_requests`.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict


class Usage(TypedDict):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatMessageOut(TypedDict):
    role: Literal["assistant"]
    content: str | None
    refusal: NotRequired[str | None]
    tool_calls: NotRequired[list[dict[str, Any]]]


class ChatChoice(TypedDict):
    index: int
    message: ChatMessageOut
    finish_reason: str
    logprobs: None


class ChatCompletion(TypedDict):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: NotRequired[str | None]


class ChunkDelta(TypedDict, total=False):
    role: str
    content: str | None
    tool_calls: list[dict[str, Any]]
    refusal: str | None


class ChunkChoice(TypedDict):
    index: int
    delta: ChunkDelta
    finish_reason: str | None
    logprobs: NotRequired[None]


class ChatCompletionChunk(TypedDict):
    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: NotRequired[Usage | None]


class CompletionChoice(TypedDict):
    index: int
    text: str
    finish_reason: str | None
    logprobs: None


class Completion(TypedDict):
    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: NotRequired[Usage | None]


class Embedding(TypedDict):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str


class EmbeddingUsage(TypedDict):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(TypedDict):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


def usage(prompt_tokens: int, completion_tokens: int) -> Usage:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
