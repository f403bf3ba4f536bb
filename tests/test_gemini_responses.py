"""Gemini -> OpenAI: responses, finish reasons, tool calls and streams, table by table
(no I/O)."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from openapi_contract import validate
from test_gemini_format import user

from models.engines.gemini_format import ChatStreamTranslator, chat_request, chat_response
from serve.errors import UpstreamError


def candidate(parts: list[dict[str, Any]] | None, finish: str | None = "STOP", **extra: Any) -> Any:
    out: dict[str, Any] = {**extra}
    if parts is not None:
        out["content"] = {"role": "model", "parts": parts}
    if finish:
        out["finishReason"] = finish
    return out


USAGE = {"promptTokenCount": 11, "candidatesTokenCount": 7, "totalTokenCount": 18}
TOKYO = {"functionCall": {"name": "get_weather", "args": {"city": "Tokyo"}}}

RESPONSE_CASES: list[tuple[str, dict[str, Any], list[dict[str, Any]], dict[str, Any]]] = [
    (
        "text parts concatenate",
        {
            "candidates": [candidate([{"text": "Hello "}, {"text": "there"}])],
            "usageMetadata": USAGE,
        },
        [{"content": "Hello there", "finish_reason": "stop", "calls": []}],
        {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    ),
    (
        "a function call is a tool call with JSON arguments and no content",
        {"candidates": [candidate([TOKYO])], "usageMetadata": USAGE},
        [
            {
                "content": None,
                "finish_reason": "tool_calls",
                "calls": [("get_weather", {"city": "Tokyo"})],
            }
        ],
        {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    ),
    (
        "text before a call is kept; thought parts are not the answer",
        {
            "candidates": [
                candidate([{"text": "planning", "thought": True}, {"text": "Let me check."}, TOKYO])
            ],
            "usageMetadata": {**USAGE, "thoughtsTokenCount": 20, "totalTokenCount": 38},
        },
        [
            {
                "content": "Let me check.",
                "finish_reason": "tool_calls",
                "calls": [("get_weather", {"city": "Tokyo"})],
            }
        ],
        {
            "prompt_tokens": 11,
            "completion_tokens": 27,
            "total_tokens": 38,
            "completion_tokens_details": {"reasoning_tokens": 20},
        },
    ),
    (
        "cached prompt tokens are reported",
        {
            "candidates": [candidate([{"text": "ok"}])],
            "usageMetadata": {**USAGE, "cachedContentTokenCount": 8},
        },
        [{"content": "ok", "finish_reason": "stop", "calls": []}],
        {
            "prompt_tokens": 11,
            "completion_tokens": 7,
            "total_tokens": 18,
            "prompt_tokens_details": {"cached_tokens": 8},
        },
    ),
    (
        "several candidates keep their index (absent means 0)",
        {
            "candidates": [candidate([{"text": "a"}]), candidate([{"text": "b"}], index=1)],
            "usageMetadata": USAGE,
        },
        [
            {"content": "a", "finish_reason": "stop", "calls": []},
            {"content": "b", "finish_reason": "stop", "calls": []},
        ],
        {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    ),
    (
        "a blocked answer has no content parts",
        {"candidates": [candidate(None, "SAFETY")], "usageMetadata": USAGE},
        [{"content": "", "finish_reason": "content_filter", "calls": []}],
        {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    ),
    (
        "a blocked prompt has no candidates, only promptFeedback",
        {
            "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
            "usageMetadata": {"promptTokenCount": 11, "totalTokenCount": 11},
        },
        [{"content": "", "finish_reason": "content_filter", "calls": []}],
        {"prompt_tokens": 11, "completion_tokens": 0, "total_tokens": 11},
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "choices", "usage"), RESPONSE_CASES, ids=[c[0] for c in RESPONSE_CASES]
)
def test_responses_translate(
    case: str, body: dict[str, Any], choices: list[dict[str, Any]], usage: dict[str, Any]
) -> None:
    result = chat_response({**body, "responseId": "abc123"}, "public-name")
    validate("CreateChatCompletionResponse", result)
    assert result["id"] == "chatcmpl-abc123" and result["model"] == "public-name", case
    assert result["object"] == "chat.completion" and isinstance(result["created"], int)
    assert result["usage"] == usage
    assert len(result["choices"]) == len(choices)
    for index, (got, want) in enumerate(zip(result["choices"], choices, strict=True)):
        assert got["index"] == index and got["logprobs"] is None
        assert got["message"]["role"] == "assistant" and got["message"]["refusal"] is None
        assert got["message"]["content"] == want["content"], case
        assert got["finish_reason"] == want["finish_reason"], case
        calls = got["message"].get("tool_calls", [])
        assert [
            (c["function"]["name"], orjson.loads(c["function"]["arguments"])) for c in calls
        ] == want["calls"]
        for c in calls:
            assert c["type"] == "function" and re.fullmatch(r"call_[0-9a-f]{24}", c["id"])


@pytest.mark.parametrize(
    ("gemini", "openai"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("OTHER", "stop"),
        ("MALFORMED_FUNCTION_CALL", "stop"),
    ],
)
def test_finish_reasons(gemini: str, openai: str) -> None:
    result = chat_response({"candidates": [candidate([{"text": "x"}], gemini)]}, "m")
    assert result["choices"][0]["finish_reason"] == openai
    validate("CreateChatCompletionResponse", result)


def test_no_candidates_without_a_block_reason_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError):
        chat_response({"usageMetadata": USAGE}, "m")


def test_tool_calls_round_trip_into_the_next_request() -> None:
    """The ids Gemini never had are made here, and resolve back to names next turn."""
    first = chat_response({"candidates": [candidate([TOKYO, TOKYO])]}, "m")
    calls = first["choices"][0]["message"]["tool_calls"]
    assert calls[0]["id"] != calls[1]["id"]
    follow_up = chat_request(
        {
            "model": "m",
            "messages": [
                user("Weather?"),
                first["choices"][0]["message"],
                {"role": "tool", "tool_call_id": calls[1]["id"], "content": "sunny"},
                {"role": "tool", "tool_call_id": calls[0]["id"], "content": "sunny too"},
            ],
        }
    )
    model_turn, results = follow_up["contents"][1], follow_up["contents"][2]
    assert model_turn == {"role": "model", "parts": [TOKYO, TOKYO]}
    assert results == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}},
            {"functionResponse": {"name": "get_weather", "response": {"output": "sunny too"}}},
        ],
    }


# -- streams ---------------------------------------------------------------------------


def events_text() -> list[dict[str, Any]]:
    partial = {"promptTokenCount": 11, "totalTokenCount": 11}
    return [
        {
            "candidates": [candidate([{"text": "Hel"}], None)],
            "usageMetadata": partial,
            "responseId": "r1",
        },
        {
            "candidates": [candidate([{"text": "lo"}], None)],
            "usageMetadata": partial,
            "responseId": "r1",
        },
        {
            "candidates": [candidate([{"text": "!"}], "STOP")],
            "usageMetadata": USAGE,
            "responseId": "r1",
        },
    ]


def run_stream(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    translator = ChatStreamTranslator("public-name")
    chunks: list[dict[str, Any]] = []
    for event in events:
        chunks.extend(translator.feed(event))
    chunks.append(dict(translator.close()))
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk)
    return chunks


def test_text_stream_chunk_sequence() -> None:
    chunks = run_stream(events_text())
    assert [c["choices"][0]["delta"] if c["choices"] else None for c in chunks] == [
        {"role": "assistant", "content": ""},
        {"content": "Hel"},
        {"content": "lo"},
        {"content": "!"},
        {},
        None,
    ]
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None] * 4 + ["stop"]
    assert chunks[-1]["usage"] == {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    assert {c["id"] for c in chunks} == {"chatcmpl-r1"}
    assert len({c["created"] for c in chunks}) == 1
    assert {c["model"] for c in chunks} == {"public-name"}


def test_tool_call_stream_numbers_calls_per_choice() -> None:
    paris = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
    chunks = run_stream(
        [
            {"candidates": [candidate([TOKYO], None)]},
            {"candidates": [candidate([paris], "STOP")], "usageMetadata": USAGE},
        ]
    )
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    calls = [d["tool_calls"] for d in deltas if "tool_calls" in d]
    assert [
        [
            (t["index"], t["function"]["name"], orjson.loads(t["function"]["arguments"]))
            for t in batch
        ]
        for batch in calls
    ] == [
        [(0, "get_weather", {"city": "Tokyo"})],
        [(1, "get_weather", {"city": "Paris"})],
    ]
    assert all(
        t["type"] == "function" and t["id"].startswith("call_") for batch in calls for t in batch
    )
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_stream_with_two_candidates_starts_and_finishes_each() -> None:
    chunks = run_stream(
        [
            {
                "candidates": [
                    candidate([{"text": "a"}], "STOP"),
                    candidate([{"text": "b"}], "STOP", index=1),
                ],
                "usageMetadata": USAGE,
            },
        ]
    )
    by_index: dict[int, list[Any]] = {0: [], 1: []}
    for chunk in chunks[:-1]:
        choice = chunk["choices"][0]
        by_index[choice["index"]].append((choice["delta"], choice["finish_reason"]))
    for index, text in ((0, "a"), (1, "b")):
        assert by_index[index] == [
            ({"role": "assistant", "content": ""}, None),
            ({"content": text}, None),
            ({}, "stop"),
        ]


def test_stream_error_event_raises() -> None:
    translator = ChatStreamTranslator("m")
    translator.feed(events_text()[0])
    with pytest.raises(UpstreamError):
        translator.feed({"error": {"code": 500, "message": "x", "status": "INTERNAL"}})


@pytest.mark.parametrize("events", [[], events_text()[:2]], ids=["empty", "no-finish"])
def test_stream_cut_short_raises_at_close(events: list[dict[str, Any]]) -> None:
    translator = ChatStreamTranslator("m")
    for event in events:
        translator.feed(event)
    with pytest.raises(UpstreamError):
        translator.close()


def test_blocked_prompt_stream_finishes_with_content_filter() -> None:
    chunks = run_stream(
        [
            {
                "promptFeedback": {"blockReason": "SAFETY"},
                "usageMetadata": {"promptTokenCount": 4, "totalTokenCount": 4},
            }
        ]
    )
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None, "content_filter"]
    assert chunks[-1]["usage"]["prompt_tokens"] == 4
