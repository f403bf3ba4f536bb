"""A real OTLP/HTTP export (protobuf over loopback) to the fake collector."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_otlp import FakeOtlpCollector

from serve.record import RequestRecord
from serve.telemetry import Telemetry, TelemetryPolicy

CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"
SERVER, CLIENT, INTERNAL = 2, 3, 1  # opentelemetry.proto Span.SpanKind
STATUS_ERROR = 2

RECORD = RequestRecord(
    request_id="req-otlp",
    started_at=datetime(2026, 1, 2, tzinfo=UTC),
    latency_ms=50.0,
    endpoint="chat",
    stream=True,
    status=200,
    outcome="ok",
    ttft_ms=20.0,
    team="search",
    key_id="k-1",
    model_requested="claude-sonnet",
    model_served="claude-sonnet",
    provider="bedrock",
    input_tokens=7,
    output_tokens=9,
    cost_usd=0.5,
    finish_reason="length",
    prompt="secret prompt text",
)


@pytest.fixture
def collector() -> Iterator[FakeOtlpCollector]:
    server = FakeOtlpCollector()
    server.start()
    yield server
    server.stop()


def test_export_reaches_collector_with_parent_ids(
    collector: FakeOtlpCollector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAYGATE_TEST_OTLP_URL", collector.endpoint)
    monkeypatch.setenv("RAYGATE_TEST_OTLP_HEADERS", "authorization=Bearer collector-token")
    policy = TelemetryPolicy.model_validate(
        {
            "otel": {
                "endpoint": "env:RAYGATE_TEST_OTLP_URL",
                "headers": "env:RAYGATE_TEST_OTLP_HEADERS",
                "service_name": "raygate-test",
            }
        }
    )
    telemetry = Telemetry(policy)
    try:
        trace = telemetry.start(
            "chat", {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"}, "req-otlp"
        )
        trace.request("claude-sonnet", stream=True, max_tokens=16)
        with trace.stage("raygate.admission"):
            pass
        with pytest.raises(TimeoutError), trace.backend_attempt("claude-sonnet", "bedrock", 1):
            raise TimeoutError
        with trace.backend_attempt("claude-sonnet", "bedrock", 2):
            pass
        trace.first_chunk()
        trace.finish(RECORD)
        assert telemetry.force_flush(10)
        spans = {
            (s.name, s.attributes.get("raygate.attempt")): s for s in collector.wait_for_spans(4)
        }
    finally:
        telemetry.shutdown()

    root = spans[("chat claude-sonnet", None)]
    assert root.kind == SERVER
    assert root.trace_id == CALLER_TRACE and root.parent_span_id == CALLER_SPAN
    assert root.resource["service.name"] == "raygate-test"
    assert root.attributes["gen_ai.provider.name"] == "aws.bedrock"
    assert root.attributes["gen_ai.usage.input_tokens"] == 7
    assert root.attributes["gen_ai.usage.output_tokens"] == 9
    assert root.attributes["gen_ai.response.finish_reasons"] == ("length",)
    assert root.attributes["gen_ai.request.max_tokens"] == 16
    assert root.attributes["gen_ai.server.time_to_first_token"] == 0.02
    assert root.attributes["raygate.team"] == "search"
    assert "gen_ai.first_chunk" in root.events
    assert all("secret prompt" not in str(v) for v in root.attributes.values())

    admission = spans[("raygate.admission", None)]
    assert admission.kind == INTERNAL and admission.parent_span_id == root.span_id
    first, second = spans[("chat claude-sonnet", 1)], spans[("chat claude-sonnet", 2)]
    for attempt in (first, second):
        assert attempt.kind == CLIENT
        assert attempt.trace_id == CALLER_TRACE and attempt.parent_span_id == root.span_id
    assert first.status_code == STATUS_ERROR and first.attributes["error.type"] == "TimeoutError"
    assert second.status_code != STATUS_ERROR
    assert collector.headers[0]["authorization"] == "Bearer collector-token"


def test_unset_endpoint_reference_fails_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from serve.errors import ConfigError

    monkeypatch.delenv("RAYGATE_TEST_OTLP_MISSING", raising=False)
    policy = TelemetryPolicy.model_validate({"otel": {"endpoint": "env:RAYGATE_TEST_OTLP_MISSING"}})
    with pytest.raises(ConfigError):
        Telemetry(policy)


def test_error_record_exports_error_status(
    collector: FakeOtlpCollector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAYGATE_TEST_OTLP_URL", collector.endpoint + "/v1/traces")
    telemetry = Telemetry(
        TelemetryPolicy.model_validate({"otel": {"endpoint": "env:RAYGATE_TEST_OTLP_URL"}})
    )
    try:
        trace = telemetry.start("completions", {}, "req-err")
        failed = dataclasses.replace(
            RECORD,
            endpoint="completions",
            outcome="error",
            status=504,
            error_code="upstream_timeout",
        )
        trace.finish(failed)
        assert telemetry.force_flush(10)
        (root,) = collector.wait_for_spans(1)
    finally:
        telemetry.shutdown()
    assert root.name == "text_completion claude-sonnet"
    assert root.status_code == STATUS_ERROR
    assert root.attributes["error.type"] == "upstream_timeout"
    assert root.parent_span_id == ""
