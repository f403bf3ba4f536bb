"""OpenAI -> Converse request translation, table-driven (the other direction, and
streams: test_converse_responses.py)."""

from __future__ import annotations

from typing import Any

import pytest

from models.engines.converse_format import (
    JSON_TOOL,
    to_converse,
)
from serve.errors import InvalidRequest

PNG = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
CALL = {
    "id": "tooluse_1",
    "type": "function",
    "function": {"name": "weather", "arguments": '{"city": "Tokyo"}'},
}
SCHEMA = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def request(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "public", "messages": list(messages), **extra}


# (id, OpenAI request, the Converse body expected)
TO_CONVERSE: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "plain",
        request(user("hi")),
        {"messages": [{"role": "user", "content": [{"text": "hi"}]}]},
    ),
    (
        "system and developer messages are hoisted in order",
        request(
            {"role": "system", "content": "Be brief."},
            user("hi"),
            {"role": "developer", "content": [{"type": "text", "text": "No emoji."}]},
        ),
        {
            "system": [{"text": "Be brief."}, {"text": "No emoji."}],
            "messages": [{"role": "user", "content": [{"text": "hi"}]}],
        },
    ),
    (
        "consecutive same-role messages merge; blank text is dropped",
        request(
            user("one"),
            {"role": "user", "content": [{"type": "text", "text": "two"}]},
            {"role": "assistant", "content": "  "},
            {"role": "assistant", "content": "three"},
            user(""),
        ),
        {
            "messages": [
                {"role": "user", "content": [{"text": "one"}, {"text": "two"}]},
                {"role": "assistant", "content": [{"text": "three"}]},
            ]
        },
    ),
    (
        "tool calls and their results; results and the next user turn share one message",
        request(
            user("Weather in Tokyo and Paris?"),
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    CALL,
                    {
                        "id": "tooluse_2",
                        "type": "function",
                        "function": {"name": "weather", "arguments": ""},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "tooluse_1", "content": '{"temp": 21}'},
            {"role": "tool", "tool_call_id": "tooluse_2", "content": "[1, 2]"},
            user("Thanks"),
            tools=[WEATHER],
        ),
        {
            "messages": [
                {"role": "user", "content": [{"text": "Weather in Tokyo and Paris?"}]},
                {
                    "role": "assistant",
                    "content": [
                        {"text": "Checking."},
                        {
                            "toolUse": {
                                "toolUseId": "tooluse_1",
                                "name": "weather",
                                "input": {"city": "Tokyo"},
                            }
                        },
                        {"toolUse": {"toolUseId": "tooluse_2", "name": "weather", "input": {}}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "toolResult": {
                                "toolUseId": "tooluse_1",
                                "content": [{"json": {"temp": 21}}],
                            }
                        },
                        {"toolResult": {"toolUseId": "tooluse_2", "content": [{"text": "[1, 2]"}]}},
                        {"text": "Thanks"},
                    ],
                },
            ],
            "toolConfig": {
                "tools": [
                    {
                        "toolSpec": {
                            "name": "weather",
                            "description": "Weather for a city",
                            "inputSchema": {"json": WEATHER["function"]["parameters"]},
                        }
                    }
                ]
            },
        },
    ),
    (
        "an empty tool result still sends a non-empty block",
        request(
            {"role": "assistant", "content": None, "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "tooluse_1", "content": ""},
            tools=[WEATHER],
            tool_choice="auto",
        ),
        {
            "messages": [
                {
                    "role": "assistant",
                    "content": [
                        {
                            "toolUse": {
                                "toolUseId": "tooluse_1",
                                "name": "weather",
                                "input": {"city": "Tokyo"},
                            }
                        }
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "(empty)"}]}}
                    ],
                },
            ],
            "toolConfig": {
                "tools": [
                    {
                        "toolSpec": {
                            "name": "weather",
                            "description": "Weather for a city",
                            "inputSchema": {"json": WEATHER["function"]["parameters"]},
                        }
                    }
                ],
                "toolChoice": {"auto": {}},
            },
        },
    ),
    (
        "images from data URLs",
        request(
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    {"type": "image_url", "image_url": {"url": f"data:image/jpg;base64,{PNG}"}},
                ],
            }
        ),
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"text": "What is this?"},
                        {"image": {"format": "png", "source": {"bytes": PNG}}},
                        {"image": {"format": "jpeg", "source": {"bytes": PNG}}},
                    ],
                }
            ]
        },
    ),
    (
        "inference parameters",
        request(user("hi"), max_tokens=50, temperature=0.2, top_p=0.9, stop="END"),
        {
            "messages": [{"role": "user", "content": [{"text": "hi"}]}],
            "inferenceConfig": {
                "maxTokens": 50,
                "temperature": 0.2,
                "topP": 0.9,
                "stopSequences": ["END"],
            },
        },
    ),
    (
        "max_completion_tokens wins over max_tokens; stop lists pass as lists",
        request(user("hi"), max_tokens=50, max_completion_tokens=20, stop=["a", "b"]),
        {
            "messages": [{"role": "user", "content": [{"text": "hi"}]}],
            "inferenceConfig": {"maxTokens": 20, "stopSequences": ["a", "b"]},
        },
    ),
]

WEATHER_SPEC = {
    "toolSpec": {
        "name": "weather",
        "description": "Weather for a city",
        "inputSchema": {"json": WEATHER["function"]["parameters"]},
    }
}
NO_DESCRIPTION = {"type": "function", "function": {"name": "now"}}
NOW_SPEC = {
    "toolSpec": {
        "name": "now",
        "inputSchema": {"json": {"type": "object", "additionalProperties": True, "properties": {}}},
    }
}
HISTORY = [
    user("Weather?"),
    {"role": "assistant", "content": None, "tool_calls": [CALL]},
    {"role": "tool", "tool_call_id": "tooluse_1", "content": "sunny"},
]

# (id, messages, extra request fields, toolConfig expected or None, json tool expected)
TOOL_CONFIG: list[tuple[str, list[dict[str, Any]], dict[str, Any], Any, str | None]] = [
    ("tools without a choice", [user("hi")], {"tools": [WEATHER]}, {"tools": [WEATHER_SPEC]}, None),
    (
        "auto",
        [user("hi")],
        {"tools": [WEATHER], "tool_choice": "auto"},
        {"tools": [WEATHER_SPEC], "toolChoice": {"auto": {}}},
        None,
    ),
    (
        "required is any",
        [user("hi")],
        {"tools": [WEATHER, NO_DESCRIPTION], "tool_choice": "required"},
        {"tools": [WEATHER_SPEC, NOW_SPEC], "toolChoice": {"any": {}}},
        None,
    ),
    (
        "a named function",
        [user("hi")],
        {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "weather"}}},
        {"tools": [WEATHER_SPEC], "toolChoice": {"tool": {"name": "weather"}}},
        None,
    ),
    (
        "none withholds the tools",
        [user("hi")],
        {"tools": [WEATHER], "tool_choice": "none"},
        None,
        None,
    ),
    (
        "none with tool blocks in the history keeps the tools Bedrock requires",
        HISTORY,
        {"tools": [WEATHER], "tool_choice": "none"},
        {"tools": [WEATHER_SPEC]},
        None,
    ),
    (
        "json_object forces the JSON tool with an open schema",
        [user("hi")],
        {"response_format": {"type": "json_object"}},
        {
            "tools": [
                {
                    "toolSpec": {
                        "name": JSON_TOOL,
                        "description": "Give your final answer by calling this tool; its input "
                        "is the answer.",
                        "inputSchema": {
                            "json": {
                                "type": "object",
                                "additionalProperties": True,
                                "properties": {},
                            }
                        },
                    }
                }
            ],
            "toolChoice": {"tool": {"name": JSON_TOOL}},
        },
        JSON_TOOL,
    ),
    (
        "json_schema forces the JSON tool with that schema",
        [user("hi")],
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "answer", "description": "The answer.", "schema": SCHEMA},
            }
        },
        {
            "tools": [
                {
                    "toolSpec": {
                        "name": JSON_TOOL,
                        "description": "Give your final answer by calling this tool; its input "
                        "is the answer. The answer.",
                        "inputSchema": {"json": SCHEMA},
                    }
                }
            ],
            "toolChoice": {"tool": {"name": JSON_TOOL}},
        },
        JSON_TOOL,
    ),
    (
        "json mode beside the caller's tools: the model must call one of them",
        [user("hi")],
        {
            "tools": [WEATHER],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "a", "schema": SCHEMA},
            },
        },
        {
            "tools": [
                WEATHER_SPEC,
                {
                    "toolSpec": {
                        "name": JSON_TOOL,
                        "description": "Give your final answer by calling this tool; its input "
                        "is the answer.",
                        "inputSchema": {"json": SCHEMA},
                    }
                },
            ],
            "toolChoice": {"any": {}},
        },
        JSON_TOOL,
    ),
    (
        "response_format text changes nothing",
        [user("hi")],
        {"response_format": {"type": "text"}},
        None,
        None,
    ),
]


@pytest.mark.parametrize(
    ("case", "openai", "converse"), TO_CONVERSE, ids=[c[0] for c in TO_CONVERSE]
)
def test_to_converse(case: str, openai: dict[str, Any], converse: dict[str, Any]) -> None:
    translated = to_converse(openai)
    assert translated.body == converse
    assert translated.json_tool is None
    assert "model" not in translated.body  # the model id travels in the URL path


@pytest.mark.parametrize(
    ("case", "messages", "extra", "tool_config", "json_tool"),
    TOOL_CONFIG,
    ids=[c[0] for c in TOOL_CONFIG],
)
def test_tool_config(
    case: str,
    messages: list[dict[str, Any]],
    extra: dict[str, Any],
    tool_config: Any,
    json_tool: str | None,
) -> None:
    translated = to_converse(request(*messages, **extra))
    assert translated.body.get("toolConfig") == tool_config
    assert translated.json_tool == json_tool


@pytest.mark.parametrize(
    ("openai", "param"),
    [
        (
            request(
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x/a.png"}}],
                }
            ),
            "messages[0].content[0]",
        ),
        (
            request(
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/bmp;base64,AA=="}}
                    ],
                }
            ),
            "messages[0].content[0]",
        ),
        (
            request(
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "data:image/png,AA=="}}],
                }
            ),
            "messages[0].content[0]",
        ),
        (
            request(
                user("a"), {"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}
            ),
            "messages[1].content[0]",
        ),
        (
            request(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{**CALL, "function": {"name": "w", "arguments": "{oops"}}],
                }
            ),
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            request(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{**CALL, "function": {"name": "w", "arguments": "[1]"}}],
                }
            ),
            "messages[0].tool_calls[0].function.arguments",
        ),
        (request(user("a"), {"role": "tool", "content": "x"}), "messages[1]"),
        (request({"role": "function", "name": "f", "content": "x"}), "messages[0].role"),
        (request(user("a"), n=2), "n"),
        (request(user("a"), logprobs=True), "logprobs"),
        (request(user("a"), tools=[{"type": "custom", "custom": {"name": "x"}}]), "tools[0].type"),
        (
            request(
                user("a"),
                tools=[{"type": "function", "function": {"name": JSON_TOOL}}],
                response_format={"type": "json_object"},
            ),
            "tools",
        ),
    ],
)
def test_requests_converse_cannot_express_are_refused(openai: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        to_converse(openai)
    assert info.value.param == param
    assert info.value.status == 400


@pytest.mark.parametrize(
    "openai",
    [
        request({"role": "assistant", "tool_calls": [{"type": "function", "function": {}}]}),
        request(user("a"), tools=[{"type": "function", "function": {"description": "no name"}}]),
        request({"role": "user", "content": ["a bare string part"]}),
        request({"role": "user", "content": [{"type": "text", "text": 5}]}),
        request(user("a"), tools=[WEATHER], tool_choice={"type": "function"}),
    ],
)
def test_malformed_parts_are_a_400_not_a_crash(openai: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest) as info:
        to_converse(openai)
    assert info.value.status == 400
