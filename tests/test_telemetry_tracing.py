"""Tracing through the in-memory exporter: span tree, GenAI attributes, W3C parents,
errors, content privacy, streams, sampling, and the no-op path when tracing is off."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from serve.errors import RateLimited, UpstreamError
from serve.record import RequestRecord
from serve.telemetry import Telemetry, TelemetryPolicy
from serve.telemetry.noop_trace import NOOP_TRACE
from serve.telemetry.record_attributes import record_attributes, span_name
from serve.telemetry.semconv import operation_name, provider_name

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
PROMPT = "my card is 4111 1111 1111 1111, tell nobody"
ANSWER = "noted, secret keeper"

RECORD = RequestRecord(
    request_id="req-1",
    started_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    latency_ms=123.0,
    endpoint="chat",
    stream=False,
    status=200,
    outcome="ok",
    team="search",
    key_id="k-123",
    project="ranker",
    model_requested="chat-default",
    model_served="gemini-2.5-flash",
    provider="vertex",
    input_tokens=12,
    output_tokens=34,
    cached_input_tokens=4,
    cost_usd=0.0021,
    cache="miss",
    fallback_from="claude-sonnet",
    finish_reason="stop",
    guardrails={"redacted.EMAIL_ADDRESS": 2, "redacted.PHONE_NUMBER": 1},
    prompt_policy="full",
    prompt=PROMPT,
    response=ANSWER,
)


def telemetry(**policy: Any) -> tuple[Telemetry, InMemorySpanExporter]:
    otel = {"exporter": "memory", **policy.pop("otel", {})}
    t = Telemetry(TelemetryPolicy.model_validate({"otel": otel, **policy}))
    return t, cast(InMemorySpanExporter, t.exporter)


def by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {s.name: s for s in exporter.get_finished_spans()}


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def hexid(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def test_span_tree_with_genai_attributes() -> None:
    t, exporter = telemetry()
    trace = t.start("chat", {}, "req-1")
    trace.request("chat-default", max_tokens=64, temperature=0.2)
    with trace.stage("raygate.admission"):
        pass
    with trace.stage("raygate.guardrails.input") as stage:
        stage.set("raygate.guardrails.redacted", 3)
    with trace.stage("raygate.cache"):
        pass
    with pytest.raises(RateLimited), trace.backend_attempt("claude-sonnet", "bedrock", 1):
        raise RateLimited("slow down")
    with trace.backend_attempt("gemini-2.5-flash", "vertex", 1):
        pass
    with trace.stage("raygate.guardrails.output"):
        pass
    trace.finish(RECORD)

    spans = by_name(exporter)
    root = spans["chat chat-default"]
    assert root.kind is SpanKind.SERVER and root.parent is None
    assert trace.trace_id == hexid(root.context.trace_id, 32)
    names = {
        "raygate.admission",
        "raygate.guardrails.input",
        "raygate.cache",
        "chat claude-sonnet",
        "chat gemini-2.5-flash",
        "raygate.guardrails.output",
    }
    assert set(spans) == names | {"chat chat-default"}
    for name in names:
        parent = spans[name].parent
        assert parent is not None and parent.span_id == root.context.span_id
        assert spans[name].context.trace_id == root.context.trace_id
    assert attrs(spans["raygate.guardrails.input"])["raygate.guardrails.redacted"] == 3

    failed, answered = spans["chat claude-sonnet"], spans["chat gemini-2.5-flash"]
    assert failed.kind is SpanKind.CLIENT
    assert failed.status.status_code is StatusCode.ERROR
    assert attrs(failed)["error.type"] == "rate_limit_exceeded"
    assert attrs(failed)["gen_ai.provider.name"] == "aws.bedrock"
    assert answered.status.status_code is StatusCode.UNSET
    assert attrs(answered) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gemini-2.5-flash",
        "gen_ai.provider.name": "gcp.vertex_ai",
        "raygate.backend.kind": "vertex",
        "raygate.attempt": 1,
    }

    a = attrs(root)
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "gcp.vertex_ai"
    assert a["gen_ai.request.model"] == "chat-default"
    assert a["gen_ai.response.model"] == "gemini-2.5-flash"
    assert a["gen_ai.request.max_tokens"] == 64 and a["gen_ai.request.temperature"] == 0.2
    assert a["gen_ai.usage.input_tokens"] == 12 and a["gen_ai.usage.output_tokens"] == 34
    assert a["gen_ai.usage.cache_read.input_tokens"] == 4
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert a["raygate.team"] == "search" and a["raygate.key_id"] == "k-123"
    assert a["raygate.cache"] == "miss" and a["raygate.fallback_from"] == "claude-sonnet"
    assert a["raygate.cost_usd"] == 0.0021 and a["raygate.request_id"] == "req-1"
    assert a["raygate.guardrails.redacted.EMAIL_ADDRESS"] == 2
    assert a["raygate.guardrails.total"] == 3
    assert "error.type" not in a and root.status.status_code is StatusCode.UNSET
    assert root.resource.attributes["service.name"] == "raygate"


def test_caller_traceparent_becomes_the_parent() -> None:
    t, exporter = telemetry()
    headers = {
        "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01",
        "tracestate": "vendor=abc",
    }
    trace = t.start("chat", headers, "req-2")
    with trace.stage("raygate.admission"):
        pass
    trace.finish(RECORD)
    assert trace.trace_id == CALLER_TRACE
    root = by_name(exporter)["chat chat-default"]
    assert root.parent is not None and root.parent.is_remote
    assert hexid(root.parent.span_id, 16) == CALLER_SPAN
    assert hexid(root.context.trace_id, 32) == CALLER_TRACE
    assert root.context.trace_state.get("vendor") == "abc"
    admission = by_name(exporter)["raygate.admission"]
    assert hexid(admission.context.trace_id, 32) == CALLER_TRACE


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"traceparent": "garbage"},
        {"traceparent": f"00-{'0' * 32}-{CALLER_SPAN}-01"},
        {"tracestate": "vendor=abc"},
    ],
)
def test_without_valid_traceparent_a_new_trace(headers: dict[str, str]) -> None:
    t, exporter = telemetry()
    trace = t.start("embeddings", headers, "req-3")
    trace.finish(dataclasses.replace(RECORD, endpoint="embeddings"))
    (root,) = exporter.get_finished_spans()
    assert root.parent is None and trace.trace_id != CALLER_TRACE
    assert root.name == "embeddings chat-default"
    assert attrs(root)["gen_ai.operation.name"] == "embeddings"


@pytest.mark.parametrize(
    ("changes", "status", "error_type"),
    [
        ({}, StatusCode.UNSET, None),
        (
            {"outcome": "error", "status": 502, "error_code": "upstream_error"},
            StatusCode.ERROR,
            "upstream_error",
        ),
        (
            {"outcome": "error", "status": 400, "error_code": "guardrail_blocked"},
            StatusCode.ERROR,
            "guardrail_blocked",
        ),
        (
            {"outcome": "rejected", "status": 429, "error_code": "rate_limit_exceeded"},
            StatusCode.UNSET,
            "rate_limit_exceeded",
        ),
        (
            {"outcome": "rejected", "status": 503, "error_code": "overloaded"},
            StatusCode.ERROR,
            "overloaded",
        ),
        ({"outcome": "rejected", "status": 401, "error_code": None}, StatusCode.UNSET, "401"),
        ({"outcome": "cancelled", "status": 200}, StatusCode.UNSET, "cancelled"),
    ],
)
def test_finish_status_and_error_type(
    changes: dict[str, Any], status: StatusCode, error_type: str | None
) -> None:
    t, exporter = telemetry()
    trace = t.start("chat", {}, "req-4")
    trace.finish(dataclasses.replace(RECORD, **changes))
    (root,) = exporter.get_finished_spans()
    assert root.status.status_code is status
    assert attrs(root).get("error.type") == error_type


def test_stage_exception_marks_span_and_propagates() -> None:
    t, exporter = telemetry()
    trace = t.start("chat", {}, "req-5")
    with pytest.raises(KeyError), trace.stage("raygate.cache"):
        raise KeyError("x")
    with trace.stage("raygate.guardrails.output") as stage:
        stage.fail("output_blocked")
    spans = by_name(exporter)
    assert attrs(spans["raygate.cache"])["error.type"] == "KeyError"
    assert attrs(spans["raygate.guardrails.output"])["error.type"] == "output_blocked"
    assert spans["raygate.guardrails.output"].status.status_code is StatusCode.ERROR


def _all_values(exporter: InMemorySpanExporter) -> str:
    spans = exporter.get_finished_spans()
    return json.dumps(
        [
            [
                s.name,
                dict(s.attributes or {}),
                [(e.name, dict(e.attributes or {})) for e in s.events],
            ]
            for s in spans
        ],
        default=str,
    )


def test_content_never_in_spans_by_default() -> None:
    t, exporter = telemetry()
    trace = t.start("chat", {}, "req-6")
    trace.finish(RECORD)
    dumped = _all_values(exporter)
    assert "4111" not in dumped and ANSWER not in dumped
    assert "gen_ai.input.messages" not in dumped


def test_content_when_capture_content() -> None:
    t, exporter = telemetry(capture_content=True)
    trace = t.start("chat", {}, "req-7")
    trace.finish(RECORD)
    (root,) = exporter.get_finished_spans()
    messages = json.loads(str(attrs(root)["gen_ai.input.messages"]))
    assert messages == [{"role": "user", "parts": [{"type": "text", "content": PROMPT}]}]
    output = json.loads(str(attrs(root)["gen_ai.output.messages"]))
    assert output[0]["parts"][0]["content"] == ANSWER


def test_stream_span_ends_when_the_stream_ends() -> None:
    t, exporter = telemetry()
    trace = t.start("chat", {}, "req-8")
    trace.request("chat-default", stream=True)
    with trace.backend_attempt("gemini-2.5-flash", "vertex", 1):
        pass
    trace.first_chunk()
    assert [s.name for s in exporter.get_finished_spans()] == ["chat gemini-2.5-flash"]
    trace.first_chunk()  # later chunks do not move it
    trace.finish(dataclasses.replace(RECORD, stream=True, ttft_ms=None))
    trace.finish(RECORD)  # a second finish is ignored
    root = by_name(exporter)["chat chat-default"]
    assert len(exporter.get_finished_spans()) == 2
    ttft = attrs(root)["gen_ai.server.time_to_first_token"]
    assert isinstance(ttft, float) and 0 <= ttft < 5
    assert attrs(root)["gen_ai.request.stream"] is True
    assert [e.name for e in root.events] == ["gen_ai.first_chunk"]


def test_record_ttft_is_the_attribute() -> None:
    t, exporter = telemetry()
    trace = t.start("chat", {}, "req-9")
    trace.finish(dataclasses.replace(RECORD, stream=True, ttft_ms=250.0))
    (root,) = exporter.get_finished_spans()
    assert attrs(root)["gen_ai.server.time_to_first_token"] == 0.25
    assert attrs(root)["gen_ai.response.time_to_first_chunk"] == 0.25


@pytest.mark.parametrize(
    ("headers", "exported"),
    [
        ({}, 0),
        ({"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"}, 1),  # caller sampled it
        ({"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-00"}, 0),
    ],
)
def test_sampling_ratio_zero_respects_the_caller(headers: dict[str, str], exported: int) -> None:
    t, exporter = telemetry(otel={"sample_ratio": 0.0})
    trace = t.start("chat", headers, "req-10")
    with trace.stage("raygate.admission"):
        pass
    trace.finish(RECORD)
    assert len(exporter.get_finished_spans()) == exported * 2
    assert trace.trace_id is not None and len(trace.trace_id) == 32


@pytest.mark.parametrize(
    "otel", [{"exporter": "none"}, {"exporter": "memory", "enabled": False}, {}]
)
def test_disabled_tracing_is_a_shared_noop(otel: dict[str, Any]) -> None:
    t = Telemetry(TelemetryPolicy.model_validate({"otel": otel}))
    assert not t.tracing and t.exporter is None
    trace = t.start("chat", {}, "req-11")
    assert trace is NOOP_TRACE and trace.trace_id is None
    with trace.stage("raygate.admission") as stage, trace.backend_attempt("m", "vertex", 1):
        stage.set("k", 1)
    trace.first_chunk()
    trace.finish(RECORD)
    carried = t.start("chat", {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"}, "req-12")
    assert carried.trace_id == CALLER_TRACE
    assert t.start("chat", {"traceparent": "00-zz"}, "req-13").trace_id is None


def test_global_tracer_provider_untouched() -> None:
    before = otel_trace.get_tracer_provider()
    t, _ = telemetry()
    t.start("chat", {}, "req-14").finish(RECORD)
    assert otel_trace.get_tracer_provider() is before
    t.shutdown()
    assert t.start("chat", {}, "req-15") is NOOP_TRACE


@pytest.mark.parametrize(
    ("kind", "provider"),
    [
        ("vertex", "gcp.vertex_ai"),
        ("bedrock", "aws.bedrock"),
        ("openai_compatible", "openai"),
        ("llama_cpp", "raygate.self_hosted"),
        ("minilm", "raygate.self_hosted"),
        ("vllm", "raygate.self_hosted"),
        ("something_new", "something_new"),
        (None, None),
    ],
)
def test_provider_names(kind: str | None, provider: str | None) -> None:
    assert provider_name(kind) == provider


@pytest.mark.parametrize(
    ("endpoint", "operation", "name"),
    [
        ("chat", "chat", "chat m"),
        ("completions", "text_completion", "text_completion m"),
        ("embeddings", "embeddings", "embeddings m"),
    ],
)
def test_operation_names(endpoint: str, operation: str, name: str) -> None:
    assert operation_name(endpoint) == operation
    assert span_name(endpoint, "m") == name
    assert span_name(endpoint, None) == operation


def test_minimal_record_attributes() -> None:
    record = RequestRecord(
        request_id="r",
        started_at=RECORD.started_at,
        latency_ms=1.0,
        endpoint="completions",
        stream=False,
        status=401,
        outcome="rejected",
        error_code="invalid_api_key",
    )
    assert record_attributes(record, capture_content=True) == {
        "gen_ai.operation.name": "text_completion",
        "gen_ai.request.stream": False,
        "http.response.status_code": 401,
        "raygate.request_id": "r",
        "raygate.endpoint": "completions",
        "raygate.outcome": "rejected",
        "gen_ai.usage.input_tokens": 0,
        "gen_ai.usage.output_tokens": 0,
        "raygate.cost_usd": 0.0,
        "error.type": "invalid_api_key",
    }


async def _chunks(items: list[str], fail_after: int | None = None) -> AsyncIterator[str]:
    for index, item in enumerate(items):
        if fail_after is not None and index == fail_after:
            raise UpstreamError("backend broke")
        yield item


async def test_backend_stream_span_covers_the_whole_stream() -> None:
    t, exporter = telemetry()
    trace = t.start("chat", {}, "req-s1")
    stream = trace.backend_stream("m", "llama_cpp", 1, _chunks(["a", "b", "c"]))
    assert await anext(stream) == "a"
    assert exporter.get_finished_spans() == ()  # still streaming
    assert [c async for c in stream] == ["b", "c"]
    (span,) = exporter.get_finished_spans()
    assert span.name == "chat m" and span.kind is SpanKind.CLIENT
    assert attrs(span)["raygate.stream.chunks"] == 3
    assert attrs(span)["gen_ai.provider.name"] == "raygate.self_hosted"
    assert [e.name for e in span.events] == ["gen_ai.first_chunk"]
    assert span.status.status_code is StatusCode.UNSET


async def test_backend_stream_failure_and_early_close() -> None:
    t, exporter = telemetry()
    trace = t.start("chat", {}, "req-s2")
    broken = trace.backend_stream("m", "vertex", 1, _chunks(["a", "b"], fail_after=1))
    with pytest.raises(UpstreamError):
        async for _ in broken:
            pass
    upstream = _chunks(["a", "b", "c"])
    closed = trace.backend_stream("m", "vertex", 2, upstream)
    assert await anext(closed) == "a"
    await closed.aclose()  # the client went away
    with pytest.raises(StopAsyncIteration):
        await anext(upstream)  # the upstream iterator was closed too
    failed, cancelled = sorted(
        exporter.get_finished_spans(), key=lambda s: attrs(s)["raygate.attempt"]
    )
    assert failed.status.status_code is StatusCode.ERROR
    assert attrs(failed)["error.type"] == "upstream_error"
    assert attrs(failed)["raygate.stream.chunks"] == 1
    assert cancelled.status.status_code is StatusCode.UNSET
    assert attrs(cancelled)["error.type"] == "cancelled"


async def test_noop_backend_stream_is_the_same_iterator() -> None:
    chunks = _chunks(["a"])
    assert NOOP_TRACE.backend_stream("m", "vertex", 1, chunks) is chunks
