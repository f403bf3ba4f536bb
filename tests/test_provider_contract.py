"""One suite, every provider adapter: the same OpenAI behaviour whatever the wire format.

Each case runs against each fake provider (`tests/provider_contract.py`): a loopback
server speaking that provider's real protocol (Vertex AI `generateContent` with OAuth
tokens, Bedrock Converse with SigV4 and AWS event streams). Provider-specific wire
details are asserted in each adapter's own test file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fake_bedrock import FakeBedrock
from fake_vertex import FakeVertex
from openapi_contract import validate
from provider_contract import Behaviour, FakeProvider

from serve.errors import GatewayError, InvalidRequest, RateLimited, UpstreamError, UpstreamTimeout

CHAT: dict[str, Any] = {
    "model": "contract",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Weather in Tokyo?"},
    ],
    "max_tokens": 64,
}
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


@pytest.fixture(scope="module", params=["vertex", "bedrock"])
def provider(request: pytest.FixtureRequest) -> Iterator[FakeProvider]:
    server: FakeVertex | FakeBedrock = FakeVertex() if request.param == "vertex" else FakeBedrock()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fake(provider: FakeProvider) -> FakeProvider:
    provider.respond_with("text")
    provider.received.clear()
    return provider


def api_requests(fake: FakeProvider) -> list[Any]:
    return [
        r
        for r in fake.received
        if r.path not in ("/token", "/") and r.method == "POST" and "sts" not in r.path
    ]


async def test_plain_chat(fake: FakeProvider) -> None:
    engine = fake.make_engine()
    reply = await engine.chat(CHAT)
    validate("CreateChatCompletionResponse", reply)
    assert reply["choices"][0]["message"]["content"].startswith("Hello from")
    assert reply["choices"][0]["finish_reason"] == "stop"
    assert reply["usage"] == {**reply["usage"], "prompt_tokens": 11, "completion_tokens": 7}
    fake.assert_authenticated(api_requests(fake)[-1])
    await engine.aclose()


async def test_stream(fake: FakeProvider) -> None:
    engine = fake.make_engine()
    chunks = [c async for c in engine.chat_stream({**CHAT, "stream": True})]
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text.startswith("Hello from")
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 7
    fake.assert_authenticated(api_requests(fake)[-1])
    await engine.aclose()


async def test_tool_call(fake: FakeProvider) -> None:
    fake.respond_with("tool_call")
    engine = fake.make_engine()
    reply = await engine.chat({**CHAT, "tools": TOOLS, "tool_choice": "auto"})
    validate("CreateChatCompletionResponse", reply)
    choice = reply["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["type"] == "function" and call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Tokyo"}
    sent = json.dumps(api_requests(fake)[-1].body)
    assert "get_weather" in sent  # the tool declaration reached the provider
    await engine.aclose()


async def test_tool_call_stream(fake: FakeProvider) -> None:
    fake.respond_with("tool_call")
    engine = fake.make_engine()
    chunks = [c async for c in engine.chat_stream({**CHAT, "tools": TOOLS, "stream": True})]
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk)
    arguments = "".join(
        call["function"].get("arguments") or ""
        for c in chunks
        if c["choices"]
        for call in c["choices"][0]["delta"].get("tool_calls") or []
    )
    assert json.loads(arguments) == {"city": "Tokyo"}
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"
    await engine.aclose()


async def test_json_mode(fake: FakeProvider) -> None:
    fake.respond_with("json")
    engine = fake.make_engine()
    reply = await engine.chat({**CHAT, "response_format": {"type": "json_object"}})
    validate("CreateChatCompletionResponse", reply)
    assert json.loads(reply["choices"][0]["message"]["content"]) == {"answer": 42}
    await engine.aclose()


ERRORS: list[tuple[Behaviour, type[GatewayError], str | None]] = [
    ("error_400", InvalidRequest, None),
    ("error_429", RateLimited, None),
    ("error_500", UpstreamError, None),
    ("error_503", UpstreamError, None),
    ("error_403", UpstreamError, "upstream_auth_failed"),
]


@pytest.mark.parametrize(("behaviour", "expected", "code"), ERRORS)
@pytest.mark.parametrize("stream", [False, True])
async def test_errors_map_to_openai_errors(
    fake: FakeProvider,
    behaviour: Behaviour,
    expected: type[GatewayError],
    code: str | None,
    stream: bool,
) -> None:
    fake.respond_with(behaviour)
    engine = fake.make_engine()
    with pytest.raises(expected) as info:
        if stream:
            [c async for c in engine.chat_stream({**CHAT, "stream": True})]
        else:
            await engine.chat(CHAT)
    error = info.value
    if code is not None:
        assert error.code == code
    if behaviour == "error_429":
        assert error.headers.get("retry-after") == "1"
    if error.status >= 500:
        assert "127.0.0.1" not in error.message and "Traceback" not in error.message
    await engine.aclose()


async def test_bad_credentials_are_an_upstream_auth_failure(fake: FakeProvider) -> None:
    engine = fake.make_engine(valid_credentials=False)
    with pytest.raises(UpstreamError) as info:
        await engine.chat(CHAT)
    assert info.value.code == "upstream_auth_failed"
    assert info.value.status == 502  # the caller did nothing wrong: not a 401 to them
    await engine.aclose()


async def test_timeout_is_a_504(fake: FakeProvider) -> None:
    fake.respond_with("slow")
    engine = fake.make_engine(timeout_s=0.5)
    with pytest.raises(UpstreamTimeout):
        await engine.chat(CHAT)
    await engine.aclose()


async def test_completions_are_refused_as_unsupported(fake: FakeProvider) -> None:
    engine = fake.make_engine()
    with pytest.raises(InvalidRequest) as info:
        await engine.completion({"model": "contract", "prompt": "hi"})
    assert info.value.code == "unsupported_task"
    await engine.aclose()
