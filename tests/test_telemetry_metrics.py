"""Metrics from records: rendered through a prometheus_client registry; bounded labels;
the Ray sink constructed and recorded without a Ray cluster."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from serve.record import RequestRecord
from serve.telemetry import TelemetryPolicy, build_observers
from serve.telemetry.labels import AllowedValues, CappedValues, status_class
from serve.telemetry.metric_sink import check_metric
from serve.telemetry.metrics import MetricsObserver, limit_of
from serve.telemetry.policy import PrometheusPolicy
from serve.telemetry.prometheus_sink import PrometheusSink
from serve.telemetry.ray_sink import RaySink

TEAMS = ("search", "support")
MODELS = ("gemini-2.5-flash", "chat-default", "claude-sonnet")

RECORD = RequestRecord(
    request_id="req-secret-id",
    started_at=datetime(2026, 1, 2, tzinfo=UTC),
    latency_ms=300.0,
    endpoint="chat",
    stream=True,
    status=200,
    outcome="ok",
    ttft_ms=40.0,
    team="search",
    key_id="k-secret-key-id",
    model_requested="chat-default",
    model_served="gemini-2.5-flash",
    provider="vertex",
    input_tokens=10,
    output_tokens=20,
    cached_input_tokens=3,
    cost_usd=0.25,
    cache="miss",
    guardrails={"redacted.EMAIL_ADDRESS": 2, "blocked": 1},
)


def observed(
    *records: RequestRecord,
) -> tuple[PrometheusSink, dict[tuple[str, frozenset[Any]], float]]:
    sink = PrometheusSink()
    observer = MetricsObserver(sink, PrometheusPolicy(), teams=TEAMS, models=MODELS)
    for record in records:
        observer.observe(record)
    samples = {}
    for family in text_string_to_metric_families(sink.render()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return sink, samples


def value(samples: dict[tuple[str, frozenset[Any]], float], name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def test_one_ok_stream() -> None:
    _, s = observed(RECORD)
    base = {"team": "search", "model": "gemini-2.5-flash"}
    ep = {**base, "endpoint": "chat"}
    assert value(s, "raygate_requests_total", **ep, status_class="2xx", outcome="ok") == 1
    assert value(s, "raygate_request_latency_seconds_count", **ep, outcome="ok") == 1
    assert value(s, "raygate_request_latency_seconds_sum", **ep, outcome="ok") == 0.3
    assert value(s, "raygate_request_latency_seconds_bucket", **ep, outcome="ok", le="0.25") == 0
    assert value(s, "raygate_request_latency_seconds_bucket", **ep, outcome="ok", le="0.5") == 1
    assert value(s, "raygate_time_to_first_token_seconds_sum", **ep) == 0.04
    assert value(s, "raygate_tokens_total", **base, direction="input") == 10
    assert value(s, "raygate_tokens_total", **base, direction="output") == 20
    assert value(s, "raygate_tokens_total", **base, direction="cached_input") == 3
    assert value(s, "raygate_cost_usd_total", **base) == 0.25
    assert value(s, "raygate_cache_events_total", **base, status="miss") == 1
    assert (
        value(
            s, "raygate_guardrail_actions_total", **base, action="redacted", entity="EMAIL_ADDRESS"
        )
        == 2
    )
    assert value(s, "raygate_guardrail_actions_total", **base, action="blocked", entity="none") == 1
    assert not [k for k in s if k[0] in ("raygate_errors_total", "raygate_limit_rejections_total")]


def test_no_ids_or_unconfigured_names_as_labels() -> None:
    strangers = dataclasses.replace(
        RECORD, team="ex-team", model_served=None, model_requested="my-own-model"
    )
    sink, s = observed(RECORD, strangers, dataclasses.replace(RECORD, team=None))
    text = sink.render()
    assert "req-secret-id" not in text and "k-secret-key-id" not in text
    assert "ex-team" not in text and "my-own-model" not in text
    ep = {"endpoint": "chat", "status_class": "2xx", "outcome": "ok"}
    assert value(s, "raygate_requests_total", team="other", model="other", **ep) == 1
    assert value(s, "raygate_requests_total", team="none", model="gemini-2.5-flash", **ep) == 1


@pytest.mark.parametrize(
    ("changes", "limit"),
    [
        (
            {"outcome": "rejected", "status": 429, "error_code": "rate_limit_exceeded"},
            "rate_limit_exceeded",
        ),
        (
            {"outcome": "rejected", "status": 429, "error_code": "tokens_per_minute"},
            "tokens_per_minute",
        ),
        (
            {"outcome": "rejected", "status": 402, "error_code": "budget_exceeded"},
            "budget_exceeded",
        ),
        (
            {"outcome": "rejected", "status": 403, "error_code": "insufficient_quota"},
            "insufficient_quota",
        ),
        ({"outcome": "rejected", "status": 401, "error_code": "invalid_api_key"}, None),
        ({"outcome": "rejected", "status": 429, "error_code": None}, None),
        ({"outcome": "error", "status": 429, "error_code": "rate_limit_exceeded"}, None),
        ({}, None),
    ],
)
def test_limit_of(changes: dict[str, Any], limit: str | None) -> None:
    assert limit_of(dataclasses.replace(RECORD, **changes)) == limit


def test_rejection_and_error_counters() -> None:
    rejected = dataclasses.replace(
        RECORD,
        outcome="rejected",
        status=429,
        error_code="rate_limit_exceeded",
        model_served=None,
        ttft_ms=None,
        input_tokens=0,
        output_tokens=0,
        cached_input_tokens=0,
        cost_usd=0.0,
        cache=None,
        guardrails={},
    )
    failed = dataclasses.replace(RECORD, outcome="error", status=502, error_code="upstream_error")
    cancelled = dataclasses.replace(RECORD, outcome="cancelled", error_code=None)
    _, s = observed(rejected, rejected, failed, cancelled)
    base = {"team": "search", "model": "chat-default"}
    assert value(s, "raygate_limit_rejections_total", **base, limit="rate_limit_exceeded") == 2
    assert (
        value(
            s,
            "raygate_requests_total",
            **base,
            endpoint="chat",
            status_class="4xx",
            outcome="rejected",
        )
        == 2
    )
    assert (
        value(
            s,
            "raygate_errors_total",
            **base,
            endpoint="chat",
            outcome="rejected",
            code="rate_limit_exceeded",
        )
        == 2
    )
    served = {"team": "search", "model": "gemini-2.5-flash", "endpoint": "chat"}
    assert value(s, "raygate_errors_total", **served, outcome="error", code="upstream_error") == 1
    assert value(s, "raygate_errors_total", **served, outcome="cancelled", code="cancelled") == 1
    assert value(s, "raygate_requests_total", **served, status_class="5xx", outcome="error") == 1


def test_observe_never_raises() -> None:
    class Broken:
        def inc(self, value: float, labels: Any) -> None:
            raise RuntimeError("sink down")

        def observe(self, value: float, labels: Any) -> None:
            raise RuntimeError("sink down")

    class BrokenSink:
        def counter(self, *args: Any) -> Broken:
            return Broken()

        def histogram(self, *args: Any) -> Broken:
            return Broken()

    MetricsObserver(BrokenSink(), PrometheusPolicy(), teams=TEAMS, models=MODELS).observe(RECORD)


@pytest.mark.parametrize(
    ("allowed", "value_in", "out"),
    [(("a", "b"), "a", "a"), (("a",), "c", "other"), (("a",), None, "none"), ((), "a", "other")],
)
def test_allowed_values(allowed: tuple[str, ...], value_in: str | None, out: str) -> None:
    assert AllowedValues(allowed)(value_in) == out


def test_capped_values() -> None:
    capped = CappedValues(2, known=("hit",))
    assert [capped(v) for v in ("hit", "x", "y", "x", "has space", None, "a" * 65)] == [
        "hit",
        "x",
        "other",
        "x",
        "other",
        "none",
        "other",
    ]


@pytest.mark.parametrize(
    ("status", "cls"), [(200, "2xx"), (429, "4xx"), (503, "5xx"), (0, "other"), (700, "other")]
)
def test_status_class(status: int, cls: str) -> None:
    assert status_class(status) == cls


@pytest.mark.parametrize(
    ("name", "labels"),
    [
        ("bad name", ()),
        ("1abc", ()),
        ("ok", ("bad-label",)),
        ("ok", ("__reserved",)),
        ("ok", ("a", "a")),
    ],
)
def test_invalid_metric_names_refused(name: str, labels: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        check_metric(name, labels)
    with pytest.raises(ValueError):
        RaySink().counter(name, "d", labels)


def test_ray_sink_records_without_a_cluster() -> None:
    # ray.util.metrics constructs and records without ray.init(); values then go nowhere.
    # Its own tag validation still applies: a missing tag is refused.
    observer = MetricsObserver(RaySink(), PrometheusPolicy(), teams=TEAMS, models=MODELS)
    observer.observe(RECORD)
    counter = RaySink().counter("raygate_test_requests", "d", ("team",))
    counter.inc(1, {"team": "search"})
    with pytest.raises(ValueError, match="Missing value for tag"):
        counter.inc(1, {})
    histogram = RaySink().histogram("raygate_test_latency", "d", ("team",), (0.1, 1.0))
    histogram.observe(0.5, {"team": "search"})


def test_build_observers_per_policy() -> None:
    sink = PrometheusSink()
    assert build_observers(TelemetryPolicy(), teams=TEAMS, models=MODELS, sink=sink)
    off = TelemetryPolicy.model_validate({"prometheus": {"enabled": False}})
    assert build_observers(off, teams=TEAMS, models=MODELS) == []
    local = TelemetryPolicy.model_validate({"prometheus": {"sink": "prometheus_client"}})
    (observer,) = build_observers(local, teams=TEAMS, models=MODELS)
    assert isinstance(observer, MetricsObserver)
