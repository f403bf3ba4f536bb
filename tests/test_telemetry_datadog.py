"""Datadog LLM Observability against the fake agent: what ddtrace 4.16 really sends."""

from __future__ import annotations

import dataclasses
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_datadog_agent import LLMOBS_PATH, FakeDatadogAgent

from serve.record import RequestRecord
from serve.telemetry.datadog import DatadogObserver, llm_span_fields, model_provider
from serve.telemetry.policy import DatadogPolicy

STARTED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
RECORD = RequestRecord(
    request_id="req-dd-1",
    started_at=STARTED,
    latency_ms=1500.0,
    endpoint="chat",
    stream=False,
    status=200,
    outcome="ok",
    team="search",
    key_id="k-42",
    model_requested="chat-default",
    model_served="gemini-2.5-flash",
    provider="vertex",
    input_tokens=11,
    output_tokens=22,
    cost_usd=0.0042,
    finish_reason="stop",
    prompt="the secret prompt",
    response="the secret answer",
    trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
)


@pytest.fixture
def agent() -> Iterator[FakeDatadogAgent]:
    server = FakeDatadogAgent()
    server.start()
    yield server
    server.stop()


def _tags(span: dict[str, Any]) -> dict[str, str]:
    return dict(tag.split(":", 1) for tag in span["tags"])


async def _observe(agent: FakeDatadogAgent, capture: bool, *records: RequestRecord) -> list[Any]:
    policy = DatadogPolicy(enabled=True, agent_url=agent.url, ml_app="raygate-test", env="ci")
    observer = DatadogObserver(policy, capture_content=capture)
    for record in records:
        observer.observe(record)
    await observer.aclose()
    assert observer.submitted == len(records) and observer.dropped == 0
    return agent.wait_for_llmobs_spans(len(records))


async def test_llm_span_reaches_agent_evp_proxy(agent: FakeDatadogAgent) -> None:
    failed = dataclasses.replace(
        RECORD,
        request_id="req-dd-2",
        outcome="error",
        status=502,
        error_code="upstream_error",
        provider="bedrock",
        model_served="claude-sonnet",
        team="support",
    )
    spans = await _observe(agent, False, RECORD, failed)
    ok, bad = sorted(spans, key=lambda s: _tags(s)["request_id"])

    assert ok["meta"]["span"]["kind"] == "llm"
    assert ok["meta"]["model_name"] == "gemini-2.5-flash"
    assert ok["meta"]["model_provider"] == "google"
    assert ok["name"] == "chat chat-default"
    assert ok["metrics"]["input_tokens"] == 11 and ok["metrics"]["output_tokens"] == 22
    assert ok["metrics"]["total_tokens"] == 33 and ok["metrics"]["total_cost"] == 0.0042
    assert ok["start_ns"] == int(STARTED.timestamp() * 1e9)
    assert abs(ok["duration"] - 1_500_000_000) < 1_000_000
    assert ok["status"] == "ok"
    tags = _tags(ok)
    assert tags["team"] == "search" and tags["key_id"] == "k-42"
    assert tags["ml_app"] == "raygate-test" and tags["env"] == "ci"
    assert tags["otel_trace_id"] == RECORD.trace_id
    assert "secret" not in str(ok)  # no content without capture_content

    assert bad["status"] == "error" and bad["meta"]["model_provider"] == "amazon_bedrock"
    assert _tags(bad)["team"] == "support" and _tags(bad)["error_code"] == "upstream_error"

    posts = [r for r in agent.received if r.path == LLMOBS_PATH]
    assert posts and all(r.headers.get("x-datadog-evp-subdomain") == "llmobs-intake" for r in posts)
    assert not [r for r in agent.received if r.path.startswith("/v0.")]  # no APM traces


async def test_content_only_with_capture_content(agent: FakeDatadogAgent) -> None:
    (span,) = await _observe(agent, True, RECORD)
    assert "the secret prompt" in str(span["meta"]["input"])
    assert "the secret answer" in str(span["meta"]["output"])


async def test_observe_drops_instead_of_blocking(agent: FakeDatadogAgent) -> None:
    policy = DatadogPolicy(enabled=True, agent_url=agent.url, queue_size=1)
    observer = DatadogObserver(policy)
    entered, release = threading.Event(), threading.Event()
    submit = observer._submit

    def stuck(fields: dict[str, Any]) -> None:  # a submission that hangs (slow agent)
        entered.set()
        assert release.wait(10)
        submit(fields)

    observer._submit = stuck  # type: ignore[method-assign]
    observer.observe(RECORD)
    assert entered.wait(10)  # the worker holds the first record
    for _ in range(4):  # one fits in the queue, three are dropped at once
        observer.observe(RECORD)
    assert observer.dropped == 3
    release.set()
    await observer.aclose()
    assert observer.submitted == 2
    assert len(agent.wait_for_llmobs_spans(2)) == 2


@pytest.mark.parametrize(
    ("kind", "provider"),
    [
        ("vertex", "google"),
        ("bedrock", "amazon_bedrock"),
        ("openai_compatible", "openai"),
        ("llama_cpp", "llama_cpp"),
        (None, "unknown"),
    ],
)
def test_model_provider(kind: str | None, provider: str) -> None:
    assert model_provider(kind) == provider


def test_span_fields_for_a_rejected_request() -> None:
    rejected = RequestRecord(
        request_id="r",
        started_at=STARTED,
        latency_ms=2.0,
        endpoint="embeddings",
        stream=False,
        status=429,
        outcome="rejected",
        error_code="rate_limit_exceeded",
        team="search",
        model_requested="minilm",
        key_id="k",
    )
    fields = llm_span_fields(rejected, capture_content=True)
    assert fields["name"] == "embeddings minilm" and fields["model_name"] == "minilm"
    assert fields["error_type"] is None  # a refusal is not a server error
    assert fields["tags"]["error_code"] == "rate_limit_exceeded"
    assert fields["input"] is None and fields["output"] is None
