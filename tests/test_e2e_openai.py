"""End to end through real Ray Serve (HAProxy ingress) with the official openai SDK.

Every response, stream chunk and error body is validated against OpenAI's published
OpenAPI spec.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from conftest import Platform
from openapi_contract import validate

pytestmark = pytest.mark.integration

CHAT = "smollm2-135m-instruct"
EMBED = "all-minilm-l6-v2"


def client(platform: Platform, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=platform.v1, api_key=key or platform.dev_key, max_retries=0)


def raw(
    platform: Platform, method: str, path: str, key: str | None = None, **kw: Any
) -> httpx.Response:
    headers = kw.pop("headers", {})
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    return httpx.request(method, platform.base_url + path, headers=headers, timeout=120, **kw)


# -- chat ---------------------------------------------------------------------------------


def test_chat_completion_with_real_model(platform: Platform) -> None:
    response = client(platform).chat.completions.with_raw_response.create(
        model=CHAT,
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=12,
        temperature=0,
    )
    assert response.headers["x-request-id"]
    completion = response.parse()
    validate("CreateChatCompletionResponse", completion.model_dump(exclude_unset=True))
    assert completion.model == CHAT
    choice = completion.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert completion.usage is not None
    assert 0 < completion.usage.completion_tokens <= 12
    assert completion.usage.prompt_tokens > 5
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


def test_max_tokens_cuts_with_finish_reason_length(platform: Platform) -> None:
    completion = client(platform).chat.completions.create(
        model=CHAT,
        messages=[{"role": "user", "content": "Write a long story about a dragon."}],
        max_tokens=3,
        temperature=0,
    )
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 3


def test_stream_reports_exact_usage(platform: Platform) -> None:
    # llama.cpp reuses the KV cache across calls, so greedy text may differ in the last
    # bits between two calls; token accounting must not.
    messages: Any = [{"role": "user", "content": "Name three colours."}]
    sdk = client(platform)
    whole = sdk.chat.completions.create(model=CHAT, messages=messages, max_tokens=16, temperature=0)
    stream = sdk.chat.completions.create(
        model=CHAT,
        messages=messages,
        max_tokens=16,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, chunks = "", []
    for chunk in stream:
        validate("CreateChatCompletionStreamResponse", chunk.model_dump(exclude_unset=True))
        chunks.append(chunk)
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
    assert text.strip()
    assert all(c.model == CHAT for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    final = chunks[-1]
    assert final.choices == [] and final.usage is not None and whole.usage is not None
    assert final.usage.prompt_tokens == whole.usage.prompt_tokens
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finish in (["stop"], ["length"])
    if finish == ["length"]:
        assert final.usage.completion_tokens == 16
    assert 0 < final.usage.completion_tokens <= 16
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_without_usage_has_no_usage_chunk(platform: Platform) -> None:
    stream = client(platform).chat.completions.create(
        model="chat-default",
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=4,
        stream=True,
    )
    chunks = list(stream)
    assert chunks and all(c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert all(c.model == "chat-default" for c in chunks)


def test_stop_sequence(platform: Platform) -> None:
    messages: Any = [{"role": "user", "content": "Count from 1 to 10, one number per line."}]
    sdk = client(platform)
    free = sdk.chat.completions.create(model=CHAT, messages=messages, max_tokens=30, temperature=0)
    assert "\n" in (free.choices[0].message.content or "").strip()
    cut = sdk.chat.completions.create(
        model=CHAT, messages=messages, max_tokens=30, temperature=0, stop=["\n"]
    )
    assert cut.choices[0].message.content and "\n" not in cut.choices[0].message.content
    assert cut.choices[0].finish_reason == "stop"


async def test_async_client_concurrent_requests(platform: Platform) -> None:
    import asyncio

    sdk = openai.AsyncOpenAI(base_url=platform.v1, api_key=platform.dev_key, max_retries=0)
    results = await asyncio.gather(
        *(
            sdk.chat.completions.create(
                model=CHAT, messages=[{"role": "user", "content": f"Say {i}"}], max_tokens=4
            )
            for i in range(4)
        )
    )
    assert len({r.id for r in results}) == 4
    await sdk.close()


# -- completions and embeddings ------------------------------------------------------------


def test_completions_plain_and_stream(platform: Platform) -> None:
    sdk = client(platform)
    done = sdk.completions.create(model=CHAT, prompt="The sky is", max_tokens=5, temperature=0)
    validate("CreateCompletionResponse", done.model_dump(exclude_unset=True))
    assert done.choices[0].text and done.usage and done.usage.completion_tokens == 5
    chunks = list(
        sdk.completions.create(
            model=CHAT,
            prompt="The sky is",
            max_tokens=5,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices)
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == done.usage.prompt_tokens
    assert chunks[-1].usage.completion_tokens == 5


def test_embeddings_float_and_base64(platform: Platform) -> None:
    sdk = client(platform)
    # The SDK asks for base64 by default and decodes it.
    result = sdk.embeddings.create(model=EMBED, input=["a cat sat on the mat", "stock prices fell"])
    assert [len(d.embedding) for d in result.data] == [384, 384]
    assert result.usage.prompt_tokens > 4
    response = raw(
        platform,
        "POST",
        "/v1/embeddings",
        platform.dev_key,
        json={"model": EMBED, "input": "a cat sat on the mat", "encoding_format": "float"},
    )
    validate("CreateEmbeddingResponse", response.json())
    floats = np.array(response.json()["data"][0]["embedding"], dtype=np.float32)
    assert np.allclose(floats, np.array(result.data[0].embedding, dtype=np.float32), atol=1e-6)
    assert abs(float(np.linalg.norm(floats)) - 1.0) < 1e-4
    encoded = raw(
        platform,
        "POST",
        "/v1/embeddings",
        platform.dev_key,
        json={"model": EMBED, "input": "x", "encoding_format": "base64"},
    ).json()["data"][0]["embedding"]
    assert len(base64.b64decode(encoded)) == 384 * 4


# -- models and permissions ----------------------------------------------------------------


def test_models_lists_only_what_the_team_may_use(platform: Platform) -> None:
    everything = {m.id for m in client(platform).models.list()}
    assert {CHAT, "chat-default", EMBED, "upstream-model"} <= everything
    limited = {m.id for m in client(platform, platform.embed_key).models.list()}
    assert limited == {EMBED, "upstream-model"}
    for model in client(platform).models.list():
        validate("Model", model.model_dump())


def test_model_not_allowed_is_403(platform: Platform) -> None:
    with pytest.raises(openai.PermissionDeniedError) as info:
        client(platform, platform.embed_key).chat.completions.create(
            model=CHAT, messages=[{"role": "user", "content": "hi"}]
        )
    validate("ErrorResponse", info.value.response.json())
    assert info.value.response.headers["x-request-id"]


def test_unknown_model_is_404(platform: Platform) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client(platform).chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "hi"}]
        )
    validate("ErrorResponse", info.value.response.json())
    assert info.value.code == "model_not_found"


@pytest.mark.parametrize("key", [None, "sk-rg-00000000-" + "x" * 43, "not-a-key"])
def test_bad_or_missing_key_is_401(platform: Platform, key: str | None) -> None:
    response = raw(
        platform, "POST", "/v1/chat/completions", key, json={"model": CHAT, "messages": []}
    )
    assert response.status_code == 401
    validate("ErrorResponse", response.json())
    with pytest.raises(openai.AuthenticationError):
        client(platform, key or "missing").models.list()


def test_jwt_from_trusted_issuer_maps_to_team(platform: Platform) -> None:
    token = platform.jwt_keys.token(platform.jwt_issuer, "svc-search")
    models = {m.id for m in client(platform, token).models.list()}
    assert models == {EMBED, "upstream-model"}
    wrong_audience = platform.jwt_keys.token(platform.jwt_issuer, "svc-search", audience="other")
    with pytest.raises(openai.AuthenticationError):
        client(platform, wrong_audience).models.list()


# -- errors --------------------------------------------------------------------------------


def test_malformed_json_is_400(platform: Platform) -> None:
    response = raw(
        platform,
        "POST",
        "/v1/chat/completions",
        platform.dev_key,
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    validate("ErrorResponse", response.json())
    assert response.json()["error"]["code"] == "invalid_json"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            {"model": CHAT, "messages": [{"role": "user", "content": "x"}], "temperature": 5},
            "temperature",
        ),
        ({"model": CHAT, "messages": []}, "messages"),
        ({"model": CHAT}, "messages"),
        ({"model": CHAT, "messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
    ],
)
def test_invalid_params_are_400_naming_the_param(
    platform: Platform, body: dict[str, Any], param: str
) -> None:
    response = raw(platform, "POST", "/v1/chat/completions", platform.dev_key, json=body)
    assert response.status_code == 400
    validate("ErrorResponse", response.json())
    assert response.json()["error"]["param"] == param


def test_body_over_limit_is_413(platform: Platform) -> None:
    big = "x" * 70_000
    with pytest.raises(openai.APIStatusError) as info:
        client(platform).chat.completions.create(
            model=CHAT, messages=[{"role": "user", "content": big}]
        )
    assert info.value.status_code == 413
    validate("ErrorResponse", info.value.response.json())


def test_upstream_failure_is_502_without_internals(platform: Platform) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client(platform).chat.completions.create(
            model="broken-upstream", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.status_code == 502
    body = info.value.response.json()
    validate("ErrorResponse", body)
    assert "10.0.0.7" not in info.value.response.text


def test_unknown_path_is_openai_404(platform: Platform) -> None:
    response = raw(platform, "GET", "/v1/nothing-here", platform.dev_key)
    assert response.status_code == 404
    validate("ErrorResponse", response.json())
    assert response.headers["x-request-id"]


def test_request_id_is_echoed_when_given(platform: Platform) -> None:
    response = raw(platform, "GET", "/healthz", headers={"x-request-id": "trace-abc.123"})
    assert response.headers["x-request-id"] == "trace-abc.123"
    assert raw(platform, "GET", "/healthz").headers["x-request-id"] != "trace-abc.123"


def test_readyz(platform: Platform) -> None:
    response = raw(platform, "GET", "/readyz")
    assert response.status_code == 200
    assert response.json()["ready"] is True
    assert set(response.json()["checks"]) >= {CHAT, EMBED, "database", "state"}


# -- pass-through to an OpenAI-compatible backend -------------------------------------------


def test_tools_and_response_format_pass_through(platform: Platform) -> None:
    tools: Any = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    completion = client(platform).chat.completions.create(
        model="upstream-model",
        messages=[{"role": "user", "content": "Weather in Tokyo?"}],
        tools=tools,
        tool_choice="auto",
        response_format={"type": "json_object"},
    )
    validate("CreateChatCompletionResponse", completion.model_dump(exclude_unset=True))
    call = completion.choices[0].message.tool_calls
    assert call and call[0].function.name == "get_weather"  # type: ignore[union-attr]
    received = platform.upstream.last("/chat/completions")
    assert received.body["tools"] == tools
    assert received.body["tool_choice"] == "auto"
    assert received.body["response_format"] == {"type": "json_object"}
    assert received.body["model"] == "fake-upstream"
    assert received.headers["authorization"] == "Bearer sk-upstream-secret"
    assert platform.dev_key not in str(received.headers)
    assert completion.model == "upstream-model"


def test_upstream_stream_pass_through(platform: Platform) -> None:
    stream = client(platform).chat.completions.create(
        model="upstream-model",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from upstream."
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 12
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk.model_dump(exclude_unset=True))


def test_serving_surface_listens_on_loopback_only(platform: Platform) -> None:
    import os

    from serve.listeners import exposed_serving_listeners, listeners_of

    found = listeners_of(os.getpid())
    haproxy = [(a, p) for a, p, command in found if "haproxy" in command]
    assert ("127.0.0.1", 8000) in haproxy and len(haproxy) >= 2  # frontend + stats/metrics
    assert any(30000 <= p <= 31000 for _, p, _ in found)  # a replica's direct-ingress port
    assert exposed_serving_listeners(os.getpid(), 8000) == []
