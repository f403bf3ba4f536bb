"""The Vertex engine against the loopback Vertex: wire details, auth, streams, failures."""

from __future__ import annotations

import asyncio
import base64
import socket
import struct
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest
from fake_vertex import SERVICE_ACCOUNT, TEXT, FakeVertex, VertexBehaviour, fake_embedding
from openapi_contract import validate

from models.engines.google_credentials import GoogleTokenSource
from models.engines.vertex import VertexEngine, default_endpoint
from serve.config import VertexBackend
from serve.errors import (
    GatewayError,
    InvalidRequest,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)

CHAT: dict[str, Any] = {"model": "gemini-test", "messages": [{"role": "user", "content": "hi"}]}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeVertex]:
    fake = FakeVertex()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def vertex(server: FakeVertex) -> FakeVertex:
    server.reset()
    return server


def bearer(received: Any) -> str:
    return str(received.headers["authorization"]).removeprefix("Bearer ")


# -- paths and authentication ----------------------------------------------------------


async def test_chat_calls_generate_content_with_a_token_from_the_token_endpoint(
    vertex: FakeVertex,
) -> None:
    engine = vertex.make_engine()
    result = await engine.chat(
        {
            **CHAT,
            "messages": [{"role": "system", "content": "Be brief."}, *CHAT["messages"]],
            "temperature": 0.2,
            "max_tokens": 20,
        }
    )
    await engine.aclose()

    validate("CreateChatCompletionResponse", result)
    assert result["model"] == vertex.public_name and result["id"].startswith("chatcmpl-")
    assert result["choices"][0]["message"]["content"] == TEXT
    assert result["usage"] == {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}

    [token_request] = vertex.token_requests()
    assert token_request.body["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    [call] = vertex.api_requests()
    assert call.method == "POST" and call.path == vertex.model_path() + ":generateContent"
    vertex.assert_authenticated(call)
    assert call.body == {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"temperature": 0.2, "maxOutputTokens": 20},
    }


@pytest.mark.parametrize(
    ("project", "location", "model"),
    [
        ("raygate-test", "us-central1", "gemini-2.5-flash"),
        ("raygate-test", "global", "gemini-2.5-pro"),
    ],
)
async def test_path_names_project_location_and_model(
    vertex: FakeVertex, project: str, location: str, model: str
) -> None:
    backend = VertexBackend(
        kind="vertex",
        project=project,
        location=location,
        model=model,
        endpoint=vertex.base_url,
        credentials_file=str(vertex.service_account_file()),
    )
    engine = VertexEngine("public", backend)
    await engine.chat(CHAT)
    await engine.aclose()
    expected = f"/v1/projects/{project}/locations/{location}/publishers/google/models/{model}"
    assert vertex.last().path == expected + ":generateContent"


@pytest.mark.parametrize(
    ("location", "endpoint"),
    [
        ("us-central1", "https://us-central1-aiplatform.googleapis.com"),
        ("europe-west4", "https://europe-west4-aiplatform.googleapis.com"),
        ("global", "https://aiplatform.googleapis.com"),
    ],
)
def test_default_endpoint_per_location(location: str, endpoint: str) -> None:
    assert default_endpoint(location) == endpoint


async def test_credentials_file_may_be_an_env_reference(
    vertex: FakeVertex, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAYGATE_TEST_VERTEX_SA", str(vertex.service_account_file()))
    backend = VertexBackend(
        kind="vertex",
        project=vertex.project,
        location=vertex.location,
        model=vertex.model,
        endpoint=vertex.base_url,
        credentials_file="env:RAYGATE_TEST_VERTEX_SA",
    )
    engine = VertexEngine("public", backend)
    await engine.chat(CHAT)
    await engine.aclose()
    vertex.assert_authenticated(vertex.last())


async def test_one_token_serves_many_calls_and_concurrent_first_calls_share_one_refresh(
    vertex: FakeVertex,
) -> None:
    engine = vertex.make_engine()
    await asyncio.gather(*(engine.chat(CHAT) for _ in range(8)))
    await engine.chat(CHAT)
    await engine.aclose()
    assert len(vertex.token_requests()) == 1
    assert len({bearer(r) for r in vertex.api_requests()}) == 1
    assert len(vertex.api_requests()) == 9


async def test_token_near_expiry_is_refreshed_before_the_call(vertex: FakeVertex) -> None:
    vertex.token_lifetime_s = 60  # inside the engine's 5-minute refresh margin
    engine = vertex.make_engine()
    await engine.chat(CHAT)
    await engine.chat(CHAT)
    await engine.aclose()
    assert len(vertex.token_requests()) == 2
    first, second = vertex.api_requests()
    assert bearer(first) != bearer(second)
    vertex.assert_authenticated(second)


async def test_a_revoked_token_is_refreshed_once_and_the_call_retried(vertex: FakeVertex) -> None:
    engine = vertex.make_engine()
    await engine.chat(CHAT)
    vertex.revoke_tokens()
    result = await engine.chat(CHAT)
    await engine.aclose()
    assert result["choices"][0]["message"]["content"] == TEXT
    assert len(vertex.token_requests()) == 2
    _, refused, retried = vertex.api_requests()
    assert bearer(refused) != bearer(retried)
    vertex.assert_authenticated(retried)


@pytest.mark.parametrize("stream", [False, True])
async def test_invalid_credentials_are_a_502_that_names_nothing(
    vertex: FakeVertex, stream: bool
) -> None:
    engine = vertex.make_engine(valid_credentials=False)
    with pytest.raises(UpstreamError) as info:
        if stream:
            [c async for c in engine.chat_stream(CHAT)]
        else:
            await engine.chat(CHAT)
    await engine.aclose()
    assert info.value.status == 502 and info.value.code == "upstream_auth_failed"
    assert vertex.token_requests() and not vertex.api_requests()  # refused at the token step
    for secret in (SERVICE_ACCOUNT, vertex.project, "invalid_grant", "JWT"):
        assert secret not in info.value.message


class _Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 1, 1, 12, 0, 0)

    def __call__(self) -> datetime:
        return self.now


class _StubCredentials:
    """Credentials whose refresh records where it ran and issues hour-long tokens."""

    def __init__(self, clock: _Clock) -> None:
        self.clock = clock
        self.token: str | None = None
        self.expiry: datetime | None = None
        self.threads: list[int] = []

    def refresh(self, request: Any) -> None:
        self.threads.append(threading.get_ident())
        self.token = f"token-{len(self.threads)}"
        self.expiry = self.clock.now + timedelta(hours=1)


@pytest.mark.parametrize(
    ("elapsed", "refreshed"),
    [
        (timedelta(0), False),
        (timedelta(minutes=54), False),
        (timedelta(minutes=55, seconds=1), True),
        (timedelta(hours=2), True),
    ],
)
async def test_token_source_refreshes_within_the_margin_off_the_event_loop(
    elapsed: timedelta, refreshed: bool
) -> None:
    clock = _Clock()
    credentials = _StubCredentials(clock)
    source = GoogleTokenSource(credentials, refresh_margin_s=300, now=clock)
    assert await source.headers() == {"authorization": "Bearer token-1"}
    clock.now += elapsed
    headers = await source.headers()
    assert headers["authorization"] == ("Bearer token-2" if refreshed else "Bearer token-1")
    assert len(credentials.threads) == (2 if refreshed else 1)
    assert threading.get_ident() not in credentials.threads
    source.close()


async def test_token_source_refreshes_a_refused_token_once() -> None:
    clock = _Clock()
    credentials = _StubCredentials(clock)
    source = GoogleTokenSource(credentials, now=clock)
    first = await source.headers()
    source.invalidate({"authorization": "Bearer some-older-token"})
    assert await source.headers() == first  # not the current token: nothing to do
    source.invalidate(first)
    assert await source.headers() == {"authorization": "Bearer token-2"}
    assert await source.headers() == {"authorization": "Bearer token-2"}
    source.close()


# -- chat ------------------------------------------------------------------------------


async def test_tool_call_answer(vertex: FakeVertex) -> None:
    vertex.respond_with("tool_call")
    engine = vertex.make_engine()
    result = await engine.chat({**CHAT, "tools": [WEATHER_TOOL], "tool_choice": "required"})
    await engine.aclose()
    validate("CreateChatCompletionResponse", result)
    choice = result["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    [tool_call] = choice["message"]["tool_calls"]
    assert tool_call["function"]["name"] == "get_weather"
    assert orjson.loads(tool_call["function"]["arguments"]) == {"city": "Tokyo"}
    sent = vertex.last().body
    assert sent["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "parameters": {
                        "type": "OBJECT",
                        "properties": {"city": {"type": "STRING"}},
                        "required": ["city"],
                    },
                }
            ]
        }
    ]
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}


async def test_json_mode_sends_the_schema_and_returns_the_json_text(vertex: FakeVertex) -> None:
    vertex.respond_with("json")
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}}
    engine = vertex.make_engine()
    result = await engine.chat(
        {
            **CHAT,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "a", "schema": schema},
            },
        }
    )
    await engine.aclose()
    assert orjson.loads(result["choices"][0]["message"]["content"] or "") == {"answer": 42}
    assert vertex.last().body["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseJsonSchema": schema,
    }


async def test_n_asks_for_candidates_and_returns_choices(vertex: FakeVertex) -> None:
    engine = vertex.make_engine()
    result = await engine.chat({**CHAT, "n": 2})
    await engine.aclose()
    validate("CreateChatCompletionResponse", result)
    assert vertex.last().body["generationConfig"] == {"candidateCount": 2}
    assert [c["index"] for c in result["choices"]] == [0, 1]


@pytest.mark.parametrize("behaviour", ["safety", "blocked_prompt"])
async def test_blocked_answers_finish_with_content_filter(
    vertex: FakeVertex, behaviour: VertexBehaviour
) -> None:
    vertex.respond_with(behaviour)
    engine = vertex.make_engine()
    result = await engine.chat(CHAT)
    chunks = [c async for c in engine.chat_stream(CHAT)]
    await engine.aclose()
    validate("CreateChatCompletionResponse", result)
    assert result["choices"][0]["finish_reason"] == "content_filter"
    assert chunks[-2]["choices"][0]["finish_reason"] == "content_filter"


# -- streams ---------------------------------------------------------------------------


async def test_stream_chunk_sequence(vertex: FakeVertex) -> None:
    engine = vertex.make_engine()
    chunks = [c async for c in engine.chat_stream(CHAT)]
    await engine.aclose()
    assert vertex.last().path == vertex.model_path() + ":streamGenerateContent?alt=sse"
    vertex.assert_authenticated(vertex.last())
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    content = [c["choices"][0]["delta"].get("content") for c in chunks[1:-2]]
    assert len(content) == 3 and "".join(str(c) for c in content) == TEXT
    assert chunks[-2]["choices"][0] == {
        "index": 0,
        "delta": {},
        "finish_reason": "stop",
        "logprobs": None,
    }
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    assert len({c["id"] for c in chunks}) == 1 and {c["model"] for c in chunks} == {
        vertex.public_name
    }


async def test_tool_call_stream(vertex: FakeVertex) -> None:
    vertex.respond_with("tool_call")
    engine = vertex.make_engine()
    chunks = [c async for c in engine.chat_stream({**CHAT, "tools": [WEATHER_TOOL]})]
    await engine.aclose()
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    [delta] = deltas[1]["tool_calls"]
    assert delta["index"] == 0 and delta["type"] == "function" and delta["id"].startswith("call_")
    assert delta["function"]["name"] == "get_weather"
    assert orjson.loads(delta["function"]["arguments"]) == {"city": "Tokyo"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["completion_tokens"] == 7


@pytest.mark.parametrize(
    ("behaviour", "received_before_failure"),
    [("break_mid_stream", 2), ("truncated_stream", 3)],
)
async def test_stream_failing_midway_raises_after_what_arrived(
    vertex: FakeVertex, behaviour: VertexBehaviour, received_before_failure: int
) -> None:
    vertex.respond_with(behaviour)
    engine = vertex.make_engine()
    received = []
    with pytest.raises(UpstreamError) as info:
        async for chunk in engine.chat_stream(CHAT):
            received.append(chunk)
    await engine.aclose()
    assert len(received) == received_before_failure  # the role chunk, then text pieces
    assert "Internal error" not in info.value.message


# -- embeddings ------------------------------------------------------------------------


async def test_embeddings_predict(vertex: FakeVertex) -> None:
    engine = vertex.make_engine(model="text-embedding-005")
    texts = ["first text", "the second one"]
    result = await engine.embeddings(
        {"model": "e", "input": texts, "dimensions": 16, "task_type": "RETRIEVAL_QUERY"}
    )
    await engine.aclose()
    validate("CreateEmbeddingResponse", result)
    call = vertex.last()
    assert call.path == vertex.model_path("text-embedding-005") + ":predict"
    vertex.assert_authenticated(call)
    assert call.body == {
        "instances": [{"content": t, "task_type": "RETRIEVAL_QUERY"} for t in texts],
        "parameters": {"outputDimensionality": 16},
    }
    assert [d["embedding"] for d in result["data"]] == [fake_embedding(t, 16) for t in texts]
    assert [d["index"] for d in result["data"]] == [0, 1]
    assert result["usage"] == {"prompt_tokens": 5, "total_tokens": 5}
    assert result["model"] == vertex.public_name


async def test_embeddings_base64_is_float32_little_endian(vertex: FakeVertex) -> None:
    engine = vertex.make_engine(model="text-embedding-005")
    result = await engine.embeddings({"model": "e", "input": "hello", "encoding_format": "base64"})
    await engine.aclose()
    encoded = result["data"][0]["embedding"]
    assert isinstance(encoded, str)
    raw = base64.b64decode(encoded)
    assert len(raw) == 768 * 4
    expected = fake_embedding("hello", 768)
    decoded = struct.unpack("<768f", raw)
    assert decoded == struct.unpack("<768f", struct.pack("<768f", *expected))


@pytest.mark.parametrize(
    ("model", "inputs", "calls"),
    [("text-embedding-005", 300, 2), ("gemini-embedding-001", 3, 3)],
)
async def test_embeddings_batch_to_the_model_limit_in_order(
    vertex: FakeVertex, model: str, inputs: int, calls: int
) -> None:
    engine = vertex.make_engine(model=model)
    texts = [f"text number {i}" for i in range(inputs)]
    result = await engine.embeddings({"model": "e", "input": texts, "dimensions": 4})
    await engine.aclose()
    assert len(vertex.api_requests()) == calls
    assert [d["embedding"] for d in result["data"]] == [fake_embedding(t, 4) for t in texts]
    assert [d["index"] for d in result["data"]] == list(range(inputs))
    assert result["usage"]["prompt_tokens"] == 3 * inputs


async def test_embeddings_refuse_token_arrays(vertex: FakeVertex) -> None:
    engine = vertex.make_engine(model="text-embedding-005")
    with pytest.raises(InvalidRequest) as info:
        await engine.embeddings({"model": "e", "input": [[1, 2, 3]]})
    await engine.aclose()
    assert info.value.param == "input" and not vertex.received


async def test_completions_are_unsupported(vertex: FakeVertex) -> None:
    engine = vertex.make_engine()
    with pytest.raises(InvalidRequest) as info:
        await engine.completion({"model": "m", "prompt": "x"})
    assert info.value.code == "unsupported_task"
    with pytest.raises(InvalidRequest) as info:
        [c async for c in engine.completion_stream({"model": "m", "prompt": "x"})]
    assert info.value.code == "unsupported_task"
    assert await engine.ready() is True
    await engine.aclose()
    assert not vertex.received


# -- failures --------------------------------------------------------------------------

ERRORS: list[tuple[VertexBehaviour, type[GatewayError], int, str, dict[str, str]]] = [
    ("error_400", InvalidRequest, 400, "upstream_invalid_request", {}),
    ("error_403", UpstreamError, 502, "upstream_auth_failed", {}),
    ("error_429", RateLimited, 429, "upstream_rate_limited", {"retry-after": "1"}),
    ("error_429_retry_info", RateLimited, 429, "upstream_rate_limited", {"retry-after": "3"}),
    ("error_500", UpstreamError, 502, "upstream_error", {}),
    ("error_503", UpstreamError, 502, "upstream_error", {}),
]


@pytest.mark.parametrize("task", ["chat", "stream", "embeddings"])
@pytest.mark.parametrize(("behaviour", "error", "status", "code", "headers"), ERRORS)
async def test_error_statuses_map_to_gateway_errors(
    vertex: FakeVertex,
    task: str,
    behaviour: VertexBehaviour,
    error: type[GatewayError],
    status: int,
    code: str,
    headers: dict[str, str],
) -> None:
    vertex.respond_with(behaviour)
    engine = vertex.make_engine(model="text-embedding-005" if task == "embeddings" else None)
    with pytest.raises(GatewayError) as info:
        if task == "chat":
            await engine.chat(CHAT)
        elif task == "stream":
            [c async for c in engine.chat_stream(CHAT)]
        else:
            await engine.embeddings({"model": "e", "input": "x"})
    await engine.aclose()
    assert type(info.value) is error
    assert (info.value.status, info.value.code, info.value.headers) == (status, code, headers)
    if status == 400:
        assert "empty text parameter" in info.value.message  # the caller's mistake, explained
    else:
        for internal in ("Internal error", "overloaded", vertex.project, "Vertex AI API"):
            assert internal not in info.value.message


@pytest.mark.parametrize(
    ("model", "project"), [("gemini-0.1-nonexistent", None), (None, "someone-elses-project")]
)
async def test_misconfigured_backend_is_a_502_that_names_nothing(
    vertex: FakeVertex, model: str | None, project: str | None
) -> None:
    engine = vertex.make_engine(model=model, project=project)
    with pytest.raises(UpstreamError) as info:
        await engine.chat(CHAT)
    await engine.aclose()
    assert info.value.status == 502
    for name in ("gemini-0.1-nonexistent", "someone-elses-project", "projects/"):
        assert name not in info.value.message


@pytest.mark.parametrize("stream", [False, True])
async def test_slow_backend_is_a_timeout(vertex: FakeVertex, stream: bool) -> None:
    vertex.respond_with("slow")
    engine = vertex.make_engine(timeout_s=0.3)
    with pytest.raises(UpstreamTimeout) as info:
        if stream:
            [c async for c in engine.chat_stream(CHAT)]
        else:
            await engine.chat(CHAT)
    await engine.aclose()
    assert info.value.status == 504


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_unreachable_backend_is_an_upstream_error(vertex: FakeVertex) -> None:
    backend = VertexBackend(
        kind="vertex",
        project=vertex.project,
        model=vertex.model,
        endpoint=f"http://127.0.0.1:{_closed_port()}",
        credentials_file=str(vertex.service_account_file()),
        timeout_s=2,
    )
    engine = VertexEngine("public", backend)
    with pytest.raises(UpstreamError) as info:
        await engine.chat(CHAT)
    await engine.aclose()
    assert info.value.status == 502 and "127.0.0.1" not in info.value.message
