"""Fault injection through the real gateway and HTTP edge, with the `openai` SDK.

The backend is `fault_server.FaultServer`: resets, hangs, non-JSON bodies, truncated
bodies and streams that stop half-way, besides 5xx and 429. For every fault the caller
sees either the approved fallback's answer (and the header that says so) or an OpenAI
error with a gateway status that leaks nothing, never a hang; and another team's
requests keep being answered while the faults happen.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asgi_client
import openai
import pytest
from fault_server import LEAK, FaultServer
from openapi_contract import validate

from serve.api.app import create_app, with_context
from serve.bootstrap import build_gateway
from serve.config import parse_platform_config

DEV = "sk-rg-fault0001-" + "a" * 32
OTHER = "sk-rg-fault0002-" + "b" * 32
MESSAGES: Any = [{"role": "user", "content": "Summarise the quarterly sales report."}]
# A bound on every call: a request that has not ended by then is the hang this suite is
# here to catch (the backends' own limits are 1 s).
NO_HANG_S = 30

FAULTS = [
    "error-500",
    "error-429",
    "html-502",
    "reset",
    "close",
    "hang",
    "malformed",
    "wrong-shape",
    "truncated",
]
STREAM_BREAKS = ["mid-stream", "mid-stream-reset"]
# What must never reach a caller: internal addresses, stack traces, library names.
SECRETS = (LEAK, "Traceback", "httpx", "httpcore", "orjson", "KeyError", "127.0.0.1")


@pytest.fixture(scope="module")
def faults() -> Iterator[FaultServer]:
    server = FaultServer()
    server.start()
    yield server
    server.stop()


def model(name: str, upstream: str, base_url: str, fallbacks: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "backend": {"kind": "openai_compatible", "base_url": base_url, "model": upstream},
        "tasks": ["chat"],
        "reliability": {
            "timeout_s": 1.0,
            "first_token_timeout_s": 1.0,
            "idle_timeout_s": 1.0,
            "retry": {"max_attempts": 2, "base_delay_s": 0, "max_delay_s": 0},
            "breaker": {"failure_threshold": 1000},
            "fallbacks": fallbacks,
        },
    }


def platform_args(server: FaultServer, tmp: Path) -> dict[str, Any]:
    url = server.base_url
    modes = FAULTS + STREAM_BREAKS
    models = [model("healthy", "ok", url, [])]
    models += [model(f"fault-{m}", m, url, ["healthy"]) for m in modes]
    models += [model(f"bare-{m}", m, url, []) for m in modes]
    return {
        "database": {"url": f"sqlite+aiosqlite:///{tmp}/faults.db"},
        "teams": [{"name": "dev"}, {"name": "other", "models": ["healthy"]}],
        "keys": [
            {"team": "dev", "name": "dev", "key": "env:RG_FAULT_DEV"},
            {"team": "other", "name": "other", "key": "env:RG_FAULT_OTHER"},
        ],
        "models": models,
        "evaluations": [
            {
                "id": "fault-fallbacks",
                "report": "file:///evals/fault-fallbacks.json",
                "approved": [{"primary": f"fault-{m}", "fallback": "healthy"} for m in modes],
            }
        ],
        # Every call must reach the backend: no answer may come from the cache.
        "cache": {"exact": {"enabled": False}},
    }


@pytest.fixture
async def app(
    faults: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Any]:
    monkeypatch.setenv("RG_FAULT_DEV", DEV)
    monkeypatch.setenv("RG_FAULT_OTHER", OTHER)
    gateway = await build_gateway(parse_platform_config(platform_args(faults, tmp_path)), {})
    yield with_context(create_app(gateway), gateway, under_serve=False)
    await gateway.aclose()


def sdk(app: Any, key: str = DEV) -> openai.AsyncOpenAI:
    return asgi_client.sdk(app, key)


def assert_clean_error(error: openai.APIStatusError) -> None:
    body = error.response.json()
    validate("ErrorResponse", body)
    assert error.status_code in (429, 502, 503, 504), (error.status_code, body)
    text = error.response.text
    for secret in SECRETS:
        assert secret not in text, (secret, text)
    assert error.response.headers.get("x-request-id")


@pytest.mark.parametrize("fault", FAULTS)
async def test_a_fault_with_an_approved_fallback_is_answered_by_the_fallback(
    app: Any, faults: FaultServer, fault: str
) -> None:
    before = faults.received[fault]
    raw = await asyncio.wait_for(
        sdk(app).chat.completions.with_raw_response.create(
            model=f"fault-{fault}", messages=MESSAGES
        ),
        NO_HANG_S,
    )
    reply = raw.parse()
    validate("CreateChatCompletionResponse", reply.model_dump(mode="json", exclude_unset=True))
    assert reply.choices[0].message.content == "Healthy answer."
    assert reply.model == "healthy"
    assert raw.headers["x-raygate-fallback"] == f"fault-{fault}->healthy"
    assert faults.received[fault] > before  # the faulty backend was really called


@pytest.mark.parametrize("fault", FAULTS)
async def test_a_fault_without_fallback_is_a_clean_openai_error(
    app: Any, faults: FaultServer, fault: str
) -> None:
    before = faults.received[fault]
    with pytest.raises(openai.APIStatusError) as caught:
        await asyncio.wait_for(
            sdk(app).chat.completions.create(model=f"bare-{fault}", messages=MESSAGES), NO_HANG_S
        )
    assert_clean_error(caught.value)
    assert faults.received[fault] > before


@pytest.mark.parametrize("fault", FAULTS)
async def test_a_stream_that_fails_before_its_first_chunk_falls_back(app: Any, fault: str) -> None:
    async def collect() -> tuple[str, str]:
        stream = await sdk(app).chat.completions.create(
            model=f"fault-{fault}", messages=MESSAGES, stream=True
        )
        text, served = "", ""
        async for chunk in stream:
            payload = chunk.model_dump(mode="json", exclude_unset=True)
            validate("CreateChatCompletionStreamResponse", payload)
            served = chunk.model
            text += "".join(c.delta.content or "" for c in chunk.choices)
        return text, served

    text, served = await asyncio.wait_for(collect(), NO_HANG_S)
    assert (text, served) == ("Half done.", "healthy")


@pytest.mark.parametrize("fault", STREAM_BREAKS)
async def test_a_stream_that_breaks_after_its_first_chunk_ends_with_an_error_event(
    app: Any, fault: str
) -> None:
    received: list[str] = []

    async def consume() -> None:
        stream = await sdk(app).chat.completions.create(
            model=f"fault-{fault}", messages=MESSAGES, stream=True
        )
        async for chunk in stream:
            received.extend(c.delta.content or "" for c in chunk.choices)

    with pytest.raises(openai.APIError) as caught:
        await asyncio.wait_for(consume(), NO_HANG_S)
    # What was sent stays sent (no silent switch to another model mid-answer) ...
    assert "".join(received) == "Half"
    # ... and the error event says nothing about the backend's insides.
    for secret in SECRETS:
        assert secret not in str(caught.value.message)


async def test_other_teams_keep_being_served_while_backends_fail(app: Any) -> None:
    dev, other = sdk(app), sdk(app, OTHER)

    async def faulty(fault: str) -> BaseException | None:
        try:
            await dev.chat.completions.create(model=f"bare-{fault}", messages=MESSAGES)
        except openai.APIStatusError as exc:
            return exc
        return None

    async def healthy() -> str | None:
        reply = await other.chat.completions.create(model="healthy", messages=MESSAGES)
        return reply.choices[0].message.content

    bad = [faulty(f) for f in FAULTS for _ in range(2)]
    good = [healthy() for _ in range(20)]
    results = await asyncio.wait_for(asyncio.gather(*bad, *good), NO_HANG_S)
    errors, answers = results[: len(bad)], results[len(bad) :]
    assert answers == ["Healthy answer."] * len(good)
    for error in errors:
        assert isinstance(error, openai.APIStatusError)
        assert_clean_error(error)
