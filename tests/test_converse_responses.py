"""Converse -> OpenAI: responses, stop reasons, usage, tool calls and streams,
table-driven; outputs checked against OpenAI's published schema."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from openapi_contract import validate
from test_converse_format import WEATHER, request, user

from models.engines.converse_format import (
    JSON_TOOL,
    StreamTranslator,
    finish_reason,
    from_converse,
    to_converse,
)


def converse_response(
    *blocks: dict[str, Any], stop: str = "end_turn", usage: dict[str, int] | None = None
) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": list(blocks)}},
        "stopReason": stop,
        "usage": usage or {"inputTokens": 11, "outputTokens": 7, "totalTokens": 18},
        "metrics": {"latencyMs": 42},
    }


def translate(response: dict[str, Any], json_tool: str | None = None) -> dict[str, Any]:
    result = from_converse(
        response,
        model="public",
        completion_id="chatcmpl-1",
        created=1_700_000_000,
        json_tool=json_tool,
    )
    validate("CreateChatCompletionResponse", result)
    return dict(result)


TOOL_USE = {"toolUse": {"toolUseId": "tooluse_9", "name": "weather", "input": {"city": "Tokyo"}}}

# (id, Converse response, json tool, message expected, finish reason expected)
FROM_CONVERSE: list[tuple[str, dict[str, Any], str | None, dict[str, Any], str]] = [
    (
        "text blocks join",
        converse_response({"text": "Hello"}, {"text": " there"}),
        None,
        {"role": "assistant", "content": "Hello there", "refusal": None},
        "stop",
    ),
    (
        "tool use",
        converse_response({"text": "Checking."}, TOOL_USE, stop="tool_use"),
        None,
        {
            "role": "assistant",
            "content": "Checking.",
            "refusal": None,
            "tool_calls": [
                {
                    "id": "tooluse_9",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Tokyo"}'},
                }
            ],
        },
        "tool_calls",
    ),
    (
        "the JSON tool's input is the answer text, and prose beside it is dropped",
        converse_response(
            {"text": "Here you go."},
            {"toolUse": {"toolUseId": "t", "name": JSON_TOOL, "input": {"answer": 42}}},
            stop="tool_use",
        ),
        JSON_TOOL,
        {"role": "assistant", "content": '{"answer":42}', "refusal": None},
        "stop",
    ),
    (
        "in JSON mode the model may still call a real tool",
        converse_response(TOOL_USE, stop="tool_use"),
        JSON_TOOL,
        {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "tool_calls": [
                {
                    "id": "tooluse_9",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Tokyo"}'},
                }
            ],
        },
        "tool_calls",
    ),
    (
        "reasoning blocks are not content",
        converse_response({"reasoningContent": {"reasoningText": {"text": "hmm"}}}, {"text": "42"}),
        None,
        {"role": "assistant", "content": "42", "refusal": None},
        "stop",
    ),
]


@pytest.mark.parametrize(
    ("case", "response", "json_tool", "message", "reason"),
    FROM_CONVERSE,
    ids=[c[0] for c in FROM_CONVERSE],
)
def test_from_converse(
    case: str, response: dict[str, Any], json_tool: str | None, message: dict[str, Any], reason: str
) -> None:
    result = translate(response, json_tool)
    assert result["choices"][0]["message"] == message
    assert result["choices"][0]["finish_reason"] == reason
    assert (result["id"], result["model"], result["object"]) == (
        "chatcmpl-1",
        "public",
        "chat.completion",
    )


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
        ("something_new", "stop"),
        (None, "stop"),
    ],
)
def test_stop_reasons(stop_reason: str | None, expected: str) -> None:
    assert finish_reason(stop_reason) == expected


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (
            {"inputTokens": 11, "outputTokens": 7, "totalTokens": 18},
            {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        ),
        (
            # Converse counts cached prompt tokens apart; OpenAI counts them in the prompt.
            {
                "inputTokens": 5,
                "outputTokens": 7,
                "cacheReadInputTokens": 100,
                "cacheWriteInputTokens": 20,
            },
            {
                "prompt_tokens": 125,
                "completion_tokens": 7,
                "total_tokens": 132,
                "prompt_tokens_details": {"cached_tokens": 100},
            },
        ),
    ],
)
def test_usage(usage: dict[str, int], expected: dict[str, Any]) -> None:
    result = translate(converse_response({"text": "x"}, usage=usage))
    assert result["usage"] == expected


def test_tool_calls_round_trip() -> None:
    """Tool calls the gateway returned come back in the history as the same toolUse blocks."""
    uses = [
        {"toolUse": {"toolUseId": "tooluse_a", "name": "weather", "input": {"city": "Tokyo"}}},
        {
            "toolUse": {
                "toolUseId": "tooluse_b",
                "name": "weather",
                "input": {"city": "Paris", "n": [1, 2]},
            }
        },
    ]
    answer = translate(converse_response({"text": "Both."}, *uses, stop="tool_use"))
    assistant = answer["choices"][0]["message"]
    follow_up = request(
        user("Weather?"),
        assistant,
        *(
            {"role": "tool", "tool_call_id": call["id"], "content": "ok"}
            for call in assistant["tool_calls"]
        ),
        tools=[WEATHER],
    )
    messages = to_converse(follow_up).body["messages"]
    assert messages[1] == {"role": "assistant", "content": [{"text": "Both."}, *uses]}
    assert [b["toolResult"]["toolUseId"] for b in messages[2]["content"]] == [
        "tooluse_a",
        "tooluse_b",
    ]


def stream(
    events: list[tuple[str, dict[str, Any]]], json_tool: str | None = None
) -> list[dict[str, Any]]:
    translator = StreamTranslator(
        model="public", completion_id="chatcmpl-s", created=1, json_tool=json_tool
    )
    chunks: list[dict[str, Any]] = []
    for name, payload in events:
        chunks.extend(dict(c) for c in translator.translate(name, payload))
    assert translator.stopped and translator.finished
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk)
    return chunks


def _tail(stop: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("messageStop", {"stopReason": stop}),
        (
            "metadata",
            {
                "usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7},
                "metrics": {"latencyMs": 9},
            },
        ),
    ]


def test_stream_text() -> None:
    chunks = stream(
        [
            ("messageStart", {"role": "assistant"}),
            ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hel"}}),
            ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "lo"}}),
            ("contentBlockStop", {"contentBlockIndex": 0}),
            *_tail("max_tokens"),
        ]
    )
    assert [c["choices"][0]["delta"] for c in chunks[:-1]] == [
        {"role": "assistant", "content": ""},
        {"content": "Hel"},
        {"content": "lo"},
        {},
    ]
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None, None, None, "length"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert {c["id"] for c in chunks} == {"chatcmpl-s"}


def test_stream_tool_calls_are_numbered_by_call_not_by_block() -> None:
    chunks = stream(
        [
            ("messageStart", {"role": "assistant"}),
            ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Checking."}}),
            (
                "contentBlockStart",
                {
                    "contentBlockIndex": 1,
                    "start": {"toolUse": {"toolUseId": "t1", "name": "weather"}},
                },
            ),
            (
                "contentBlockDelta",
                {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"ci'}}},
            ),
            (
                "contentBlockDelta",
                {"contentBlockIndex": 1, "delta": {"toolUse": {"input": 'ty": "Tokyo"}'}}},
            ),
            (
                "contentBlockStart",
                {"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "t2", "name": "now"}}},
            ),
            ("contentBlockDelta", {"contentBlockIndex": 2, "delta": {"toolUse": {"input": "{}"}}}),
            *_tail("tool_use"),
        ]
    )
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert "".join(d.get("content") or "" for d in deltas) == "Checking."
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert calls[0] == {
        "index": 0,
        "id": "t1",
        "type": "function",
        "function": {"name": "weather", "arguments": ""},
    }
    assert calls[3] == {
        "index": 1,
        "id": "t2",
        "type": "function",
        "function": {"name": "now", "arguments": ""},
    }
    arguments: dict[int, str] = {}
    for call in calls:
        arguments[call["index"]] = arguments.get(call["index"], "") + call["function"]["arguments"]
    assert {i: orjson.loads(a) for i, a in arguments.items()} == {0: {"city": "Tokyo"}, 1: {}}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_stream_json_mode_streams_the_tool_input_as_content() -> None:
    chunks = stream(
        [
            ("messageStart", {"role": "assistant"}),
            (
                "contentBlockStart",
                {
                    "contentBlockIndex": 0,
                    "start": {"toolUse": {"toolUseId": "t", "name": JSON_TOOL}},
                },
            ),
            (
                "contentBlockDelta",
                {"contentBlockIndex": 0, "delta": {"toolUse": {"input": '{"answer"'}}},
            ),
            (
                "contentBlockDelta",
                {"contentBlockIndex": 0, "delta": {"toolUse": {"input": ": 42}"}}},
            ),
            *_tail("tool_use"),
        ],
        json_tool=JSON_TOOL,
    )
    deltas = [c["choices"][0]["delta"] for c in chunks[:-1]]
    assert not any("tool_calls" in d for d in deltas)
    assert orjson.loads("".join(d.get("content") or "" for d in deltas)) == {"answer": 42}
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
