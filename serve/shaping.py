"""What the caller sees of an answer: the public model id, OpenAI-required fields, the
raygate headers, the usage chunk only when asked for."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Mapping
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

from serve.cache import CacheStatus, Lookup
from serve.config import ModelConfig
from serve.openai_requests import ChatCompletionRequest, CompletionRequest
from serve.openai_types import ChatCompletion, ChatCompletionChunk, Completion
from serve.streams import aclose_quietly

if TYPE_CHECKING:
    from serve.model_access import Plan

__all__ = [
    "CACHE_HEADER",
    "FALLBACK_HEADER",
    "MODEL_HEADER",
    "answer_headers",
    "as_chat",
    "cache_headers",
    "cut_chunk",
    "deprecation_headers",
    "finish_reason",
    "public_model",
    "shape_chat",
    "shape_stream",
]

C = TypeVar("C", ChatCompletionChunk, Completion)

MODEL_HEADER = "x-raygate-model"
FALLBACK_HEADER = "x-raygate-fallback"
CACHE_HEADER = "x-raygate-cache"


def public_model(plan: Plan, served: str) -> str:
    """The requested name when it always means the model that answered (a model or one of
    its aliases); otherwise, after a route's pick or a fallback, the model that answered."""
    return plan.requested if served == plan.pinned else served


def answer_headers(
    plan: Plan, served: str, primary: str, cache: CacheStatus | None
) -> dict[str, str]:
    headers = {MODEL_HEADER: served}
    if served != primary:
        headers[FALLBACK_HEADER] = f"{primary}->{served}"
    if cache is not None:
        headers[CACHE_HEADER] = cache.value
    return headers


def cache_headers(lookup: Lookup, response: Mapping[str, Any]) -> dict[str, str]:
    """A cached answer names the model that first produced it; ``age`` in seconds."""
    headers = {MODEL_HEADER: str(response["model"]), CACHE_HEADER: lookup.status.value}
    if lookup.hit is not None:
        headers["age"] = str(int(lookup.hit.age_s))
    return headers


def finish_reason(response: Mapping[str, Any]) -> str | None:
    choices = response.get("choices") or ()
    return choices[0].get("finish_reason") if choices else None


def cut_chunk(last: C) -> C:
    """The final chunk of a stream cut at its reservation."""
    chunk: dict[str, Any] = dict(last)
    choices: list[Any] = list(last["choices"])
    streamed_delta = bool(choices) and "delta" in choices[0]
    final: dict[str, Any] = {"index": 0, "finish_reason": "length", "logprobs": None}
    if streamed_delta:
        final["delta"] = {}
    else:
        final["text"] = ""
    chunk["choices"] = [final]
    chunk.pop("usage", None)
    return cast(C, chunk)


def deprecation_headers(model: ModelConfig) -> dict[str, str]:
    """RFC 9745 `Deprecation` (@epoch), RFC 8594 `Sunset` (HTTP date), and the successor."""
    assert model.deprecation is not None
    info = model.deprecation
    at = dt.datetime.combine(info.deprecated_on, dt.time(), dt.UTC)
    headers = {"deprecation": f"@{int(at.timestamp())}"}
    if info.sunset_on is not None:
        sunset = dt.datetime.combine(info.sunset_on, dt.time(), dt.UTC)
        headers["sunset"] = format_datetime(sunset, usegmt=True)
    if info.replacement is not None:
        headers["x-raygate-replacement"] = info.replacement
    return headers


def as_chat(response: Mapping[str, Any]) -> ChatCompletion:
    return cast(ChatCompletion, dict(response))


def shape_chat(result: ChatCompletion) -> ChatCompletion:
    for choice in result["choices"]:
        # Fields OpenAI's schema requires that engines (llama.cpp, vLLM) may omit.
        choice.setdefault("logprobs", None)
        choice["message"].setdefault("refusal", None)
    return result


async def shape_stream(
    chunks: AsyncIterator[C], request: ChatCompletionRequest | CompletionRequest, model: str
) -> AsyncIterator[C]:
    """Public model id on every chunk; the usage chunk only when the caller asked for it."""
    include_usage = bool(request.stream_options and request.stream_options.include_usage)
    try:
        async for chunk in chunks:
            chunk["model"] = model
            if chunk.get("usage") is not None and not chunk["choices"]:
                if include_usage:
                    yield chunk
                continue
            if include_usage:
                chunk["usage"] = None
            else:
                chunk.pop("usage", None)
            yield chunk
    finally:
        await aclose_quietly(chunks)
