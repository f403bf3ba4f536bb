"""The HTTP edge without Ray: SSE errors, internal errors, load shedding, body limits.

A scripted engine stands in for a model so each failure happens exactly where the test
says; the gateway, key store and SDK are the real ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openapi_contract import validate

from models.engine import Request
from models.engines.unsupported import NoEmbeddings
from serve.api.app import create_app, with_context
from serve.auth.authenticator import Authenticator
from serve.config import parse_platform_config
from serve.errors import UpstreamError
from serve.gateway import Gateway
from serve.keystore import KeyStore
from serve.openai_types import ChatCompletion, ChatCompletionChunk, Completion
from serve.state.memory_store import MemoryStateStore

KEY = "sk-edge-test-key"


class ScriptedEngine(NoEmbeddings):
    def __init__(self) -> None:
        self.fail_after: int | None = None
        self.crash = False
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    def chunk(self, content: str) -> ChatCompletionChunk:
        return {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "scripted",
            "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}],
        }

    async def chat(self, request: Request) -> ChatCompletion:
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.crash:
            raise RuntimeError("secret internal detail /etc/raygate/db-password")
        return {
            "id": "c1",
            "object": "chat.completion",
            "created": 1,
            "model": "scripted",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "ok"},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }

    async def chat_stream(self, request: Request) -> AsyncIterator[ChatCompletionChunk]:
        for i in range(3):
            if self.fail_after is not None and i == self.fail_after:
                raise UpstreamError("The model backend failed.")
            yield self.chunk(f"t{i}")

    async def completion(self, request: Request) -> Completion:
        raise NotImplementedError

    async def completion_stream(self, request: Request) -> AsyncIterator[Completion]:
        raise NotImplementedError
        yield

    async def ready(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None


@pytest.fixture
async def edge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Any, ScriptedEngine]]:
    monkeypatch.setenv("RG_EDGE_KEY", KEY)
    config = parse_platform_config(
        {
            "database": {"url": f"sqlite+aiosqlite:///{tmp_path}/edge.db"},
            "ingress": {"max_ongoing_requests": 1, "max_body_bytes": 2048},
            "teams": [{"name": "t"}],
            "keys": [{"team": "t", "name": "k", "key": "env:RG_EDGE_KEY"}],
            "models": [{"name": "scripted", "backend": {"kind": "llama_cpp"}}],
        }
    )
    keys = KeyStore(config.database.url)
    await keys.init(config.teams, [(config.keys[0], KEY)])
    engine = ScriptedEngine()
    gateway = Gateway(
        config, Authenticator(config, keys), keys, MemoryStateStore(), {"scripted": engine}, None
    )
    app = with_context(create_app(gateway), gateway, under_serve=False)
    yield app, engine
    await gateway.aclose()


def sdk(app: Any) -> openai.AsyncOpenAI:
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://edge"
    )
    return openai.AsyncOpenAI(
        base_url="http://edge/v1", api_key=KEY, http_client=http, max_retries=0
    )


MESSAGES: Any = [{"role": "user", "content": "hi"}]


async def test_failure_after_first_chunk_ends_stream_with_error_event(
    edge: tuple[Any, ScriptedEngine],
) -> None:
    app, engine = edge
    engine.fail_after = 2
    received = []
    stream = await sdk(app).chat.completions.create(
        model="scripted", messages=MESSAGES, stream=True
    )
    with pytest.raises(openai.APIError, match="model backend failed"):
        async for chunk in stream:
            received.append(chunk.choices[0].delta.content)
    assert received == ["t0", "t1"]


async def test_failure_before_first_chunk_is_an_http_error(
    edge: tuple[Any, ScriptedEngine],
) -> None:
    app, engine = edge
    engine.fail_after = 0
    with pytest.raises(openai.APIStatusError) as info:
        await sdk(app).chat.completions.create(model="scripted", messages=MESSAGES, stream=True)
    assert info.value.status_code == 502
    validate("ErrorResponse", info.value.response.json())


async def test_internal_error_is_500_without_internals(edge: tuple[Any, ScriptedEngine]) -> None:
    app, engine = edge
    engine.crash = True
    with pytest.raises(openai.InternalServerError) as info:
        await sdk(app).chat.completions.create(model="scripted", messages=MESSAGES)
    body = info.value.response.json()
    validate("ErrorResponse", body)
    assert "db-password" not in info.value.response.text
    assert info.value.response.headers["x-request-id"] in body["error"]["message"]


async def test_overload_is_503_with_retry_after(edge: tuple[Any, ScriptedEngine]) -> None:
    app, engine = edge
    engine.gate = asyncio.Event()
    client = sdk(app)
    first = asyncio.create_task(client.chat.completions.create(model="scripted", messages=MESSAGES))
    await engine.entered.wait()  # the one allowed request is in flight
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model="scripted", messages=MESSAGES)
    assert info.value.status_code == 503
    assert info.value.response.headers["retry-after"] == "1"
    validate("ErrorResponse", info.value.response.json())
    engine.gate.set()
    assert (await first).choices[0].message.content == "ok"


async def test_chunked_body_over_limit_is_413(edge: tuple[Any, ScriptedEngine]) -> None:
    app, _ = edge

    async def body() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 1000

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://edge"
    ) as http:
        response = await http.post(
            "/v1/chat/completions", content=body(), headers={"authorization": f"Bearer {KEY}"}
        )
    assert response.status_code == 413
    validate("ErrorResponse", response.json())


async def test_request_id_generated_validated_and_echoed(edge: tuple[Any, ScriptedEngine]) -> None:
    app, _ = edge
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://edge"
    ) as http:
        generated = (await http.get("/healthz")).headers.get_list("x-request-id")
        echoed = (await http.get("/healthz", headers={"x-request-id": "abc-123"})).headers[
            "x-request-id"
        ]
        bogus = (await http.get("/healthz", headers={"x-request-id": "a b\tc"})).headers[
            "x-request-id"
        ]
    assert len(generated) == 1 and len(generated[0]) == 32
    assert echoed == "abc-123"
    assert bogus != "a b\tc"
