"""The OpenAI-compatible engine against a loopback upstream: what it sends, how it fails."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from fake_upstream import FakeUpstream

from models.engines.openai_compatible import OpenAICompatibleEngine
from serve.errors import GatewayError, RateLimited, UpstreamError

CHAT: dict[str, Any] = {"model": "public", "messages": [{"role": "user", "content": "hi"}]}


def engine(
    upstream: FakeUpstream, model: str = "fake", base_url: str | None = None
) -> OpenAICompatibleEngine:
    return OpenAICompatibleEngine(
        "public", base_url or upstream.base_url, model, api_key="sk-up", timeout_s=5
    )


async def test_sends_upstream_model_and_key_and_answers_public_name(upstream: FakeUpstream) -> None:
    e = engine(upstream)
    result = await e.chat({**CHAT, "temperature": 0.2, "vendor_param": {"x": 1}})
    assert result["model"] == "public"
    sent = upstream.last("/chat/completions")
    assert sent.body["model"] == "fake" and sent.body["vendor_param"] == {"x": 1}
    assert sent.headers["authorization"] == "Bearer sk-up"
    await e.aclose()


async def test_stream_always_requests_usage(upstream: FakeUpstream) -> None:
    e = engine(upstream)
    chunks = [c async for c in e.chat_stream(CHAT)]
    assert upstream.last("/chat/completions").body["stream_options"] == {"include_usage": True}
    assert chunks[-1]["usage"] == {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
    assert all(c["model"] == "public" for c in chunks)
    await e.aclose()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("model", "error", "status"),
    [
        ("fail-500", UpstreamError, 502),
        ("fail-429", RateLimited, 429),
        ("malformed", UpstreamError, 502),
        ("unreachable", UpstreamError, 502),
    ],
)
async def test_failures_map_to_gateway_errors(
    upstream: FakeUpstream, model: str, error: type[GatewayError], status: int
) -> None:
    base = f"http://127.0.0.1:{_closed_port()}/v1" if model == "unreachable" else None
    e = engine(upstream, model, base)
    with pytest.raises(error) as info:
        await e.chat(CHAT)
    assert info.value.status == status
    assert "10.0.0.7" not in info.value.message  # upstream internals never pass through on 5xx
    await e.aclose()


async def test_error_event_mid_stream_raises(upstream: FakeUpstream) -> None:
    e = engine(upstream, "break-mid-stream")
    received = []
    with pytest.raises(UpstreamError):
        async for chunk in e.chat_stream(CHAT):
            received.append(chunk)
    assert len(received) == 2  # role chunk and the first word, then the failure
    await e.aclose()


def test_backpressure_from_a_model_deployment_is_429() -> None:
    from ray.serve.exceptions import BackPressureError

    from serve.remote_engine import _translate

    error = _translate(BackPressureError(num_queued_requests=5, max_queued_requests=5))
    assert isinstance(error, RateLimited) and error.headers["retry-after"] == "1"
    assert isinstance(_translate(RuntimeError("x")), UpstreamError)
