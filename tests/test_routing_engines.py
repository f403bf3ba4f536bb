"""The executor around real engines: the OpenAI-compatible adapter against the loopback
upstream, on the system clock. Proves the seams fit (engine errors classify as intended,
httpx streams are async iterators the executor can close) without any fake in between."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from fake_upstream import FakeUpstream

from models.engines.openai_compatible import OpenAICompatibleEngine
from serve.errors import UpstreamError
from serve.openai_types import ChatCompletionChunk
from serve.routing.executor import Executor
from serve.routing.policy import ReliabilityPolicy

CHAT: dict[str, Any] = {"model": "x", "messages": [{"role": "user", "content": "hi"}]}

# Upstream model per public model: see tests/fake_upstream.py for the behaviours.
UPSTREAM = {
    "broken": "fail-500",
    "limited": "fail-429",
    "breaks-mid-stream": "break-mid-stream",
    "working": "fake",
}


@pytest.fixture
async def engines(upstream: FakeUpstream) -> AsyncIterator[dict[str, OpenAICompatibleEngine]]:
    made = {
        name: OpenAICompatibleEngine(name, upstream.base_url, model, timeout_s=5)
        for name, model in UPSTREAM.items()
    }
    yield made
    for engine in made.values():
        await engine.aclose()


def executor() -> Executor:
    fast_retries = ReliabilityPolicy.model_validate(
        {"retry": {"max_attempts": 2, "base_delay_s": 0.001, "max_delay_s": 0.01}}
    )
    return Executor(default=fast_retries)


def sent(upstream: FakeUpstream, model: str) -> int:
    return sum(1 for r in upstream.requests if r.body.get("model") == model)


@pytest.mark.parametrize("failing", ["broken", "limited"])
async def test_a_failing_provider_is_retried_then_the_fallback_answers(
    upstream: FakeUpstream, engines: dict[str, OpenAICompatibleEngine], failing: str
) -> None:
    before = sent(upstream, UPSTREAM[failing])
    outcome = await executor().call((failing, "working"), lambda m: engines[m].chat(CHAT))
    assert outcome.model == "working" and outcome.fallback_used
    assert outcome.result["choices"][0]["message"]["content"] == "Hello from upstream."
    assert sent(upstream, UPSTREAM[failing]) - before == 2
    assert [a.result for a in outcome.attempts] == ["failed", "failed", "ok"]


async def test_a_stream_that_fails_before_its_first_chunk_falls_back(
    engines: dict[str, OpenAICompatibleEngine],
) -> None:
    def open_stream(model: str) -> AsyncIterator[ChatCompletionChunk]:
        return engines[model].chat_stream(CHAT)

    stream = await executor().stream(("broken", "working"), open_stream)
    async with stream:
        chunks = [chunk async for chunk in stream]
    assert stream.model == "working" and stream.fallback_used
    assert {c["model"] for c in chunks} == {"working"}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Hello from upstream."
    assert chunks[-1]["usage"] is not None and stream.closed


async def test_a_stream_that_breaks_after_its_first_chunk_ends_with_the_error(
    engines: dict[str, OpenAICompatibleEngine],
) -> None:
    def open_stream(model: str) -> AsyncIterator[ChatCompletionChunk]:
        return engines[model].chat_stream(CHAT)

    stream = await executor().stream(("breaks-mid-stream", "working"), open_stream)
    received = []
    with pytest.raises(UpstreamError):
        async for chunk in stream:
            received.append(chunk)
    assert stream.model == "breaks-mid-stream" and not stream.fallback_used
    assert len(received) == 2  # the role chunk and the first word, then the failure
    assert stream.closed
