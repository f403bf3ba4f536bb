"""OpenAI <-> Gemini translation, both ways, table by table (no I/O)."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from openapi_contract import validate

from models.engines.gemini_format import ChatStreamTranslator, chat_request, chat_response
from models.engines.gemini_schema import to_gemini_schema
from serve.errors import InvalidRequest, UpstreamError

PNG = "iVBORw0KGgo="  # valid base64 (the PNG signature)
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city.",
        "parameters": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
WEATHER_DECLARATION = {
    "name": "get_weather",
    "description": "Weather for a city.",
    "parameters": {
        "type": "OBJECT",
        "properties": {"city": {"type": "STRING"}},
        "required": ["city"],
    },
}


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


# -- requests: messages ----------------------------------------------------------------

MESSAGE_CASES: list[tuple[str, list[dict[str, Any]], dict[str, Any]]] = [
    (
        "plain user text",
        [user("hi")],
        {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
    ),
    (
        "system and developer messages join the system instruction, in order",
        [
            {"role": "system", "content": "Be brief."},
            user("hi"),
            {"role": "developer", "content": [{"type": "text", "text": "No emoji."}]},
        ],
        {
            "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "No emoji."}]},
            "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        },
    ),
    (
        "a system-only conversation becomes the user's turn",
        [{"role": "system", "content": "Say hi."}],
        {"contents": [{"role": "user", "parts": [{"text": "Say hi."}]}]},
    ),
    (
        "assistant turns are model turns; consecutive turns of one role merge",
        [user("a"), user("b"), {"role": "assistant", "content": "c"}, user("d")],
        {
            "contents": [
                {"role": "user", "parts": [{"text": "a"}, {"text": "b"}]},
                {"role": "model", "parts": [{"text": "c"}]},
                {"role": "user", "parts": [{"text": "d"}]},
            ]
        },
    ),
    (
        "multimodal: data: URL inline, gs:// and https:// by reference, audio inline",
        [
            user(
                [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    {
                        "type": "image_url",
                        "image_url": {"url": "gs://bucket/cat.jpg", "detail": "low"},
                    },
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://example.com/a/doc.pdf?x=1"},
                    },
                    {"type": "input_audio", "input_audio": {"data": PNG, "format": "wav"}},
                    {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{PNG}"}},
                ]
            )
        ],
        {
            "contents": [
                {
                    "role": "user",
                    "parts": [
                        {"text": "What is this?"},
                        {"inlineData": {"mimeType": "image/png", "data": PNG}},
                        {"fileData": {"mimeType": "image/jpeg", "fileUri": "gs://bucket/cat.jpg"}},
                        {
                            "fileData": {
                                "mimeType": "application/pdf",
                                "fileUri": "https://example.com/a/doc.pdf?x=1",
                            }
                        },
                        {"inlineData": {"mimeType": "audio/wav", "data": PNG}},
                        {"inlineData": {"mimeType": "application/pdf", "data": PNG}},
                    ],
                }
            ]
        },
    ),
    (
        "tool calls and their results: names found by id, parallel results in one turn",
        [
            user("Weather in Tokyo and Paris?"),
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    call("call_a", "get_weather", '{"city": "Tokyo"}'),
                    call("call_b", "get_weather", '{"city": "Paris"}'),
                ],
            },
            {"role": "tool", "tool_call_id": "call_a", "content": '{"celsius": 22}'},
            {"role": "tool", "tool_call_id": "call_b", "content": "rain, 14C"},
            {"role": "assistant", "content": "Tokyo 22C, Paris rainy."},
        ],
        {
            "contents": [
                {"role": "user", "parts": [{"text": "Weather in Tokyo and Paris?"}]},
                {
                    "role": "model",
                    "parts": [
                        {"functionCall": {"name": "get_weather", "args": {"city": "Tokyo"}}},
                        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                    ],
                },
                {
                    "role": "user",
                    "parts": [
                        {
                            "functionResponse": {
                                "name": "get_weather",
                                "response": {"output": {"celsius": 22}},
                            }
                        },
                        {
                            "functionResponse": {
                                "name": "get_weather",
                                "response": {"output": "rain, 14C"},
                            }
                        },
                    ],
                },
                {"role": "model", "parts": [{"text": "Tokyo 22C, Paris rainy."}]},
            ]
        },
    ),
    (
        "assistant text with a call keeps both; empty arguments are an empty object",
        [
            user("x"),
            {"role": "assistant", "content": "Checking.", "tool_calls": [call("c1", "now", "")]},
            {"role": "function", "name": "now", "content": "12:00"},
        ],
        {
            "contents": [
                {"role": "user", "parts": [{"text": "x"}]},
                {
                    "role": "model",
                    "parts": [{"text": "Checking."}, {"functionCall": {"name": "now", "args": {}}}],
                },
                {
                    "role": "user",
                    "parts": [
                        {"functionResponse": {"name": "now", "response": {"output": "12:00"}}}
                    ],
                },
            ]
        },
    ),
]


@pytest.mark.parametrize(
    ("case", "messages", "expected"), MESSAGE_CASES, ids=[c[0] for c in MESSAGE_CASES]
)
def test_messages_translate(case: str, messages: list[dict[str, Any]], expected: Any) -> None:
    assert chat_request({"model": "m", "messages": messages}) == expected, case


# -- requests: tools, tool choice, JSON mode, sampling ---------------------------------

OPTION_CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "tools become function declarations with cleaned schemas",
        {"tools": [WEATHER]},
        {"tools": [{"functionDeclarations": [WEATHER_DECLARATION]}]},
    ),
    (
        "a tool without arguments has no parameters",
        {
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "now", "parameters": {"type": "object", "properties": {}}},
                }
            ]
        },
        {"tools": [{"functionDeclarations": [{"name": "now"}]}]},
    ),
    (
        "tool_choice none",
        {"tools": [WEATHER], "tool_choice": "none"},
        {
            "tools": [{"functionDeclarations": [WEATHER_DECLARATION]}],
            "toolConfig": {"functionCallingConfig": {"mode": "NONE"}},
        },
    ),
    (
        "tool_choice auto",
        {"tools": [WEATHER], "tool_choice": "auto"},
        {
            "tools": [{"functionDeclarations": [WEATHER_DECLARATION]}],
            "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
        },
    ),
    (
        "tool_choice required",
        {"tools": [WEATHER], "tool_choice": "required"},
        {
            "tools": [{"functionDeclarations": [WEATHER_DECLARATION]}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
        },
    ),
    (
        "tool_choice naming a function",
        {
            "tools": [WEATHER],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        },
        {
            "tools": [{"functionDeclarations": [WEATHER_DECLARATION]}],
            "toolConfig": {
                "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
            },
        },
    ),
    (
        "tool_choice auto without tools configures nothing",
        {"tool_choice": "auto"},
        {},
    ),
    (
        "json_object",
        {"response_format": {"type": "json_object"}},
        {"generationConfig": {"responseMimeType": "application/json"}},
    ),
    (
        "json_schema passes the JSON Schema as it is",
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "answer",
                    "strict": True,
                    "schema": {
                        "type": "object",
                        "properties": {"answer": {"type": ["integer", "null"]}},
                        "required": ["answer"],
                        "additionalProperties": False,
                    },
                },
            }
        },
        {
            "generationConfig": {
                "responseMimeType": "application/json",
                "responseJsonSchema": {
                    "type": "object",
                    "properties": {"answer": {"type": ["integer", "null"]}},
                    "required": ["answer"],
                    "additionalProperties": False,
                },
            }
        },
    ),
    (
        "text response_format changes nothing",
        {"response_format": {"type": "text"}},
        {},
    ),
    (
        "sampling parameters",
        {
            "temperature": 0.3,
            "top_p": 0.9,
            "max_tokens": 50,
            "stop": "END",
            "n": 2,
            "seed": 7,
            "presence_penalty": 0.5,
            "frequency_penalty": -0.5,
        },
        {
            "generationConfig": {
                "temperature": 0.3,
                "topP": 0.9,
                "maxOutputTokens": 50,
                "stopSequences": ["END"],
                "candidateCount": 2,
                "seed": 7,
                "presencePenalty": 0.5,
                "frequencyPenalty": -0.5,
            }
        },
    ),
    (
        "max_completion_tokens wins over max_tokens; stop lists stay lists",
        {"max_tokens": 50, "max_completion_tokens": 20, "stop": ["a", "b"]},
        {"generationConfig": {"maxOutputTokens": 20, "stopSequences": ["a", "b"]}},
    ),
    (
        "reasoning effort sets the thinking budget",
        {"reasoning_effort": "low"},
        {"generationConfig": {"thinkingConfig": {"thinkingBudget": 1024}}},
    ),
]


@pytest.mark.parametrize(
    ("case", "options", "expected"), OPTION_CASES, ids=[c[0] for c in OPTION_CASES]
)
def test_options_translate(case: str, options: dict[str, Any], expected: Any) -> None:
    body = chat_request({"model": "m", "messages": [user("hi")], **options})
    assert body == {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], **expected}, case


REJECTED: list[tuple[dict[str, Any], str]] = [
    (
        {"messages": [user([{"type": "image_url", "image_url": {"url": "http://x/a.png"}}])]},
        "messages[0].content[0].image_url.url",
    ),
    (
        {"messages": [user([{"type": "image_url", "image_url": {"url": "https://x/photo"}}])]},
        "messages[0].content[0].image_url.url",
    ),
    (
        {
            "messages": [
                user([{"type": "image_url", "image_url": {"url": "data:image/png;base64,%%%"}}])
            ]
        },
        "messages[0].content[0].image_url.url",
    ),
    ({"messages": [user([{"type": "video", "video": {}}])]}, "messages[0].content[0].type"),
    (
        {"messages": [user("x"), {"role": "tool", "tool_call_id": "nope", "content": "1"}]},
        "messages[1].tool_call_id",
    ),
    (
        {"messages": [user("x"), {"role": "assistant", "tool_calls": [call("c", "f", "[1, 2]")]}]},
        "messages[1].tool_calls[0].function.arguments",
    ),
    (
        {
            "messages": [user("x")],
            "tools": [WEATHER],
            "tool_choice": {"type": "function", "function": {"name": "other"}},
        },
        "tool_choice",
    ),
    ({"messages": [user("x")], "tool_choice": "required"}, "tool_choice"),
    ({"messages": [user("x")], "response_format": {"type": "yaml"}}, "response_format.type"),
    ({"messages": [user("x")], "logprobs": True}, "logprobs"),
]


@pytest.mark.parametrize(("request_", "param"), REJECTED)
def test_untranslatable_requests_are_400_naming_the_parameter(
    request_: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequest) as info:
        chat_request({"model": "m", **request_})
    assert info.value.param == param and info.value.status == 400


# -- tool schemas ----------------------------------------------------------------------

SCHEMA_CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "keys outside Gemini's subset are dropped, types upper-cased",
        {
            "$schema": "x",
            "$id": "y",
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "n": {"type": "integer", "minimum": 1, "examples": [3], "description": "count"}
            },
        },
        {
            "type": "OBJECT",
            "properties": {"n": {"type": "INTEGER", "minimum": 1, "description": "count"}},
        },
    ),
    (
        "type arrays with null become nullable",
        {"type": ["string", "null"], "maxLength": 5},
        {"type": "STRING", "nullable": True, "maxLength": 5},
    ),
    (
        "several non-null types become anyOf",
        {"type": ["string", "integer"]},
        {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]},
    ),
    (
        "local $refs are inlined",
        {
            "type": "object",
            "properties": {"at": {"$ref": "#/$defs/Place"}},
            "$defs": {"Place": {"type": "object", "properties": {"city": {"type": "string"}}}},
        },
        {
            "type": "OBJECT",
            "properties": {"at": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}}},
        },
    ),
    (
        "anyOf with a null branch collapses to a nullable schema",
        {"anyOf": [{"type": "string", "enum": ["a", "b"]}, {"type": "null"}]},
        {"type": "STRING", "enum": ["a", "b"], "nullable": True},
    ),
    (
        "string const becomes a one-value enum; numeric enums are dropped",
        {
            "type": "object",
            "properties": {
                "kind": {"type": "string", "const": "x"},
                "level": {"type": "integer", "enum": [1, 2]},
            },
        },
        {
            "type": "OBJECT",
            "properties": {"kind": {"type": "STRING", "enum": ["x"]}, "level": {"type": "INTEGER"}},
        },
    ),
    (
        "arrays keep their item schema",
        {"type": "array", "items": {"type": "number"}, "minItems": 1},
        {"type": "ARRAY", "items": {"type": "NUMBER"}, "minItems": 1},
    ),
]


@pytest.mark.parametrize(
    ("case", "schema", "expected"), SCHEMA_CASES, ids=[c[0] for c in SCHEMA_CASES]
)
def test_tool_schemas_translate(case: str, schema: dict[str, Any], expected: Any) -> None:
    assert to_gemini_schema(schema, param="p") == expected, case


@pytest.mark.parametrize(
    "schema",
    [
        {
            "type": "object",
            "properties": {"next": {"$ref": "#/$defs/Node"}},
            "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}},
        },
        {"$ref": "#/$defs/Missing"},
        {"$ref": "https://example.com/schema.json"},
        {"type": "date"},
    ],
)
def test_schemas_gemini_cannot_take_are_400(schema: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest) as info:
        to_gemini_schema(schema, param="tools[0].function.parameters")
    assert info.value.param == "tools[0].function.parameters"


# -- responses -------------------------------------------------------------------------


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
