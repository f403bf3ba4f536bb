"""Cached answers replay as OpenAI-valid streams and round-trip through stream assembly."""

from __future__ import annotations

import copy
from typing import Any, cast

import pytest
from openapi_contract import validate

from serve.cache.replay import (
    ChatStreamAssembler,
    assemble_chat,
    assemble_completion,
    replay_chat_stream,
    replay_completion_stream,
)
from serve.openai_types import ChatCompletion, ChatCompletionChunk, Completion

USAGE = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}


def chat(choices: list[dict[str, Any]], **extra: Any) -> ChatCompletion:
    return cast(
        ChatCompletion,
        {
            "id": "chatcmpl-abc",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "m",
            "choices": choices,
            "usage": USAGE,
            **extra,
        },
    )


def text_choice(index: int, content: str, finish: str = "stop") -> dict[str, Any]:
    return {
        "index": index,
        "message": {"role": "assistant", "content": content, "refusal": None},
        "finish_reason": finish,
        "logprobs": None,
    }


TOOL_CALL = {
    "index": 0,
    "message": {
        "role": "assistant",
        "content": None,
        "refusal": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Tokyo"}'},
            },
            {
                "id": "call_2",
                "type": "function",
                "function": {"name": "get_time", "arguments": "{}"},
            },
        ],
    },
    "finish_reason": "tool_calls",
    "logprobs": None,
}

LOGPROBS = {
    "content": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": []}],
    "refusal": None,
}

CASES = {
    "text": chat([text_choice(0, "Refunds are prorated.")]),
    "length": chat([text_choice(0, "Refunds are", "length")]),
    "n=2": chat([text_choice(0, "One."), text_choice(1, "Two.")]),
    "tool calls": chat([TOOL_CALL]),
    "refusal": chat(
        [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "refusal": "I can't."},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ]
    ),
    "logprobs": chat([{**text_choice(0, "Hi"), "logprobs": LOGPROBS}]),
    "fingerprint": chat([text_choice(0, "Hi")], system_fingerprint="fp_1"),
}


async def _collect(completion: ChatCompletion) -> list[ChatCompletionChunk]:
    return [chunk async for chunk in replay_chat_stream(completion)]


@pytest.mark.parametrize("name", list(CASES))
async def test_replay_is_openai_valid_and_ends_with_usage(name: str) -> None:
    completion = CASES[name]
    validate("CreateChatCompletionResponse", completion)
    chunks = await _collect(completion)
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk)
        assert chunk["id"] == completion["id"] and chunk["model"] == completion["model"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == USAGE
    assert all("usage" not in c for c in chunks[:-1])
    first_per_choice = {}
    for chunk in chunks[:-1]:
        (choice,) = chunk["choices"]
        first_per_choice.setdefault(choice["index"], choice["delta"])
    assert all(delta.get("role") == "assistant" for delta in first_per_choice.values())


@pytest.mark.parametrize("name", list(CASES))
async def test_replay_then_assemble_gives_back_the_completion(name: str) -> None:
    completion = CASES[name]
    assert assemble_chat(await _collect(completion)) == completion


async def test_assembles_tool_call_fragments_by_index() -> None:
    head = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    deltas = [
        {"role": "assistant", "content": None},
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]},
        {
            "tool_calls": [
                {
                    "index": 1,
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": "{}"},
                }
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '"Tokyo"}'}}]},
    ]
    chunks = [
        {**head, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas
    ]
    chunks.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    chunks.append({**head, "choices": [], "usage": USAGE})
    assembled = assemble_chat(cast(list[ChatCompletionChunk], chunks))
    assert assembled is not None
    assert assembled["choices"][0]["message"] == TOOL_CALL["message"]


@pytest.mark.parametrize("drop", ["usage chunk", "finish chunk", "everything"])
async def test_incomplete_stream_assembles_to_none(drop: str) -> None:
    chunks = await _collect(CASES["n=2"])
    if drop == "usage chunk":
        chunks = chunks[:-1]
    elif drop == "finish chunk":
        chunks = [c for c in chunks if not (c["choices"] and c["choices"][0]["finish_reason"])]
    else:
        chunks = []
    assert assemble_chat(chunks) is None


async def test_assembler_is_not_affected_by_later_edits_to_chunks() -> None:
    assembler = ChatStreamAssembler()
    async for chunk in replay_chat_stream(copy.deepcopy(CASES["text"])):
        assembler.add(chunk)
        for choice in chunk["choices"]:  # e.g. an output guardrail redacting in place
            if choice["delta"].get("content"):
                choice["delta"]["content"] = "[redacted]"
        chunk.pop("usage", None)
    assert assembler.result() == CASES["text"]


def completion(texts: list[str]) -> Completion:
    return cast(
        Completion,
        {
            "id": "cmpl-1",
            "object": "text_completion",
            "created": 1_700_000_000,
            "model": "m",
            "choices": [
                {"index": i, "text": t, "finish_reason": "length", "logprobs": None}
                for i, t in enumerate(texts)
            ],
            "usage": USAGE,
        },
    )


@pytest.mark.parametrize("texts", [[" blue."], [" blue.", " grey."]])
async def test_completion_replay_round_trip(texts: list[str]) -> None:
    original = completion(texts)
    chunks = [c async for c in replay_completion_stream(original)]
    for chunk in chunks[:-1]:
        validate("CreateCompletionResponse", chunk)
        assert "usage" not in chunk
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == USAGE
    assert assemble_completion(chunks) == original
    assert assemble_completion(chunks[:-1]) is None
