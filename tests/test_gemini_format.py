"""OpenAI -> Gemini request translation: messages, options, tool schemas, table by
table, no I/O (the other direction, and streams: test_gemini_responses.py)."""

from __future__ import annotations

from typing import Any

import pytest

from models.engines.gemini_format import chat_request
from models.engines.gemini_schema import to_gemini_schema
from serve.errors import InvalidRequest

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
