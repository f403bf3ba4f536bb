"""LLMServer answers -> raygate dicts and GatewayErrors (`models.engines.vllm_stream`), on CPU.

vLLM is not installed here, so its response objects are stood in for by pydantic models
of the same shape (the translation reads them through ``model_dump``), and stream events
are written as vLLM's OpenAI server writes them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from models.engines.vllm_stream import error_from, response_dict, stream_chunks, vllm_request
from serve.errors import (
    GatewayError,
    InvalidRequest,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)


class ErrorInfo(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: int


class ErrorResponse(BaseModel):
    error: ErrorInfo


class ChatCompletionResponse(BaseModel):
    id: str
    object: str = "chat.completion"
    created: int
    model: str
    choices: list[dict[str, Any]]
    usage: dict[str, int]
    prompt_logprobs: None = None


class ChatCompletionRequest(BaseModel):
    """The fields of vLLM's request that the translation touches (vLLM allows extras)."""

    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[dict[str, Any]]
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    max_tokens: int | None = Field(None, ge=1)


def sse(payload: dict[str, Any] | str) -> str:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n"


def chunk(content: str | None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    delta = {} if content is None else {"content": content}
    return {
        "id": "chatcmpl-7",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "Qwen/Qwen2.5-7B-Instruct",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        **extra,
    }


USAGE = {
    "id": "chatcmpl-7",
    "object": "chat.completion.chunk",
    "created": 1700000000,
    "model": "Qwen/Qwen2.5-7B-Instruct",
    "choices": [],
    "usage": {"prompt_tokens": 5, "total_tokens": 7, "completion_tokens": 2},
}
BAD_REQUEST = {"message": "max_tokens is too large", "type": "BadRequestError", "code": 400}


async def batches(*items: object) -> AsyncIterator[object]:
    for item in items:
        yield item


async def collect(*items: object) -> tuple[list[dict[str, Any]], GatewayError | None]:
    out: list[dict[str, Any]] = []
    try:
        async for item in stream_chunks(batches(*items), "qwen"):
            out.append(item)
    except GatewayError as exc:
        return out, exc
    return out, None


@pytest.mark.parametrize(
    ("error", "cls", "status", "message"),
    [
        (BAD_REQUEST, InvalidRequest, 400, "max_tokens is too large"),
        ({**BAD_REQUEST, "code": 422}, InvalidRequest, 400, "max_tokens is too large"),
        (
            {"message": "The model `x` does not exist.", "type": "NotFoundError", "code": 404},
            NotFound,
            404,
            "The model `x` does not exist.",
        ),
        ({**BAD_REQUEST, "code": 413}, PayloadTooLarge, 413, "max_tokens is too large"),
        (
            {**BAD_REQUEST, "code": 429},
            RateLimited,
            429,
            "The model is at capacity; retry shortly.",
        ),
        ({**BAD_REQUEST, "code": 503}, Overloaded, 503, "The model is overloaded; retry shortly."),
        ({**BAD_REQUEST, "code": 504}, UpstreamTimeout, 504, "The model timed out."),
        (
            {"message": "CUDA out of memory at 0x7f", "type": "InternalServerError", "code": 500},
            UpstreamError,
            502,
            "The model failed (HTTP 500).",
        ),
        ({"message": "no code", "type": "x"}, UpstreamError, 502, "The model failed (HTTP 500)."),
    ],
)
def test_error_maps_status_to_gateway_error(
    error: dict[str, Any], cls: type[GatewayError], status: int, message: str
) -> None:
    mapped = error_from(error)
    assert (type(mapped), mapped.status, mapped.message) == (cls, status, message)


def test_error_keeps_param_and_caps_message() -> None:
    mapped = error_from({**BAD_REQUEST, "message": "x" * 2000, "param": "max_tokens"})
    assert (mapped.param, len(mapped.message)) == ("max_tokens", 500)
    assert error_from({**BAD_REQUEST, "code": 429}).headers == {"retry-after": "1"}


def test_response_object_becomes_dict_named_for_the_public_model() -> None:
    answer = ChatCompletionResponse(
        id="chatcmpl-1",
        created=1700000000,
        model="Qwen/Qwen2.5-7B-Instruct",
        choices=[
            {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
        ],
        usage={"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    )
    body = response_dict(answer, "qwen")
    assert body["model"] == "qwen"
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hi"},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ]
    assert body["usage"]["total_tokens"] == 4


@pytest.mark.parametrize(
    ("item", "items", "cls", "status"),
    [
        (ErrorResponse(error=ErrorInfo(**BAD_REQUEST)), "choices", InvalidRequest, 400),
        ({"error": {**BAD_REQUEST, "code": 503}}, "choices", Overloaded, 503),
        ({"object": "error", **BAD_REQUEST}, "choices", InvalidRequest, 400),
        ("data: {}\n\n", "choices", UpstreamError, 502),
        ({"id": "x", "choices": None}, "choices", UpstreamError, 502),
        ({"id": "x", "choices": ["text"]}, "choices", UpstreamError, 502),
        ({"object": "list", "choices": []}, "data", UpstreamError, 502),
        (None, "choices", UpstreamError, 502),
    ],
)
def test_response_errors(item: object, items: Any, cls: type[GatewayError], status: int) -> None:
    with pytest.raises(cls) as caught:
        response_dict(item, "qwen", items)
    assert caught.value.status == status


def test_embeddings_answer_uses_data() -> None:
    body = response_dict(
        {
            "object": "list",
            "model": "e5",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.5]}],
        },
        "embed",
        "data",
    )
    assert (body["model"], body["data"][0]["embedding"]) == ("embed", [0.5])


async def test_stream_yields_chunks_in_order_until_done() -> None:
    out, error = await collect(
        [sse(chunk("", role="x")), sse(chunk("Hel"))],
        [sse(chunk("lo")), sse(chunk(None, "stop"))],
        [sse(USAGE), "data: [DONE]\n\n"],
        [sse(chunk("after done"))],
    )
    assert error is None
    assert [c["choices"][0]["delta"].get("content") for c in out[:4]] == ["", "Hel", "lo", None]
    assert out[3]["choices"][0]["finish_reason"] == "stop"
    assert out[4]["choices"] == [] and out[4]["usage"]["total_tokens"] == 7
    assert {c["model"] for c in out} == {"qwen"}
    assert len(out) == 5


async def test_stream_reads_several_events_in_one_string_and_skips_comments() -> None:
    out, error = await collect(
        [": keep-alive\n\n" + sse(chunk("a")) + sse(chunk("b", "stop")) + "data: [DONE]\n\n"]
    )
    assert error is None
    assert [c["choices"][0]["delta"]["content"] for c in out] == ["a", "b"]


async def test_stream_without_done_ends_with_its_batches() -> None:
    out, error = await collect([sse(chunk("a"))], sse(chunk("b", "stop")))
    assert (error, len(out)) == (None, 2)


@pytest.mark.parametrize(
    ("items", "yielded", "cls", "status"),
    [
        # The engine refused before streaming: LLMServer's batcher wraps the ErrorResponse.
        ([[ErrorResponse(error=ErrorInfo(**BAD_REQUEST))]], 0, InvalidRequest, 400),
        # vLLM's mid-stream error event, after a chunk went out.
        (
            [[sse(chunk("a")), sse({"error": {**BAD_REQUEST, "code": 500}})]],
            1,
            UpstreamError,
            502,
        ),
        ([[sse(chunk("a"))], [sse({"object": "error", **BAD_REQUEST})]], 1, InvalidRequest, 400),
        ([["data: {not json\n\n"]], 0, UpstreamError, 502),
        ([[sse(chunk("a")), sse('["a list"]')]], 1, UpstreamError, 502),
        ([[sse({"id": "x", "object": "chat.completion.chunk"})]], 0, UpstreamError, 502),
    ],
)
async def test_stream_errors(
    items: list[object], yielded: int, cls: type[GatewayError], status: int
) -> None:
    out, error = await collect(*items)
    assert isinstance(error, cls)
    assert (len(out), error.status) == (yielded, status)


@pytest.mark.parametrize(
    ("stream", "request_", "expected"),
    [
        (
            True,
            {"model": "qwen-alias", "messages": [], "stream_options": {"include_usage": False}},
            {"model": "qwen", "stream": True, "stream_options": {"include_usage": True}},
        ),
        (
            True,
            {"model": "qwen", "messages": []},
            {"model": "qwen", "stream": True, "stream_options": {"include_usage": True}},
        ),
        (
            False,
            {"model": "qwen", "messages": [], "stream": True, "stream_options": {"x": 1}},
            {"model": "qwen", "stream": False, "stream_options": None},
        ),
        (None, {"model": "a", "messages": [], "stream": True}, {"model": "qwen", "stream": True}),
    ],
)
def test_vllm_request_is_for_the_served_model(
    stream: bool | None, request_: dict[str, Any], expected: dict[str, Any]
) -> None:
    built = vllm_request(ChatCompletionRequest, request_, "qwen", stream=stream)
    assert {k: getattr(built, k) for k in expected} == expected


def test_vllm_request_keeps_extra_fields_and_refuses_invalid_ones() -> None:
    built = vllm_request(
        ChatCompletionRequest, {"model": "q", "messages": [], "top_k": 5}, "qwen", stream=False
    )
    assert built.model_extra == {"top_k": 5}
    with pytest.raises(InvalidRequest) as caught:
        vllm_request(ChatCompletionRequest, {"messages": [], "max_tokens": 0}, "qwen", stream=False)
    assert (caught.value.status, caught.value.param) == (400, "max_tokens")
    assert caught.value.message.startswith("max_tokens: ")
