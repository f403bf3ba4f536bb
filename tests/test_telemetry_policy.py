"""TelemetryPolicy: safe defaults, env references only for secrets, exporter defaulting."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from serve.errors import ConfigError
from serve.telemetry.exporter import otlp_headers, traces_url
from serve.telemetry.policy import TelemetryPolicy


def test_defaults_are_private_and_observable() -> None:
    policy = TelemetryPolicy()
    assert policy.capture_content is False
    assert policy.otel.enabled and policy.otel.exporter == "none" and not policy.otel.recording
    assert policy.prometheus.enabled and policy.prometheus.sink == "ray"
    assert policy.datadog.enabled is False
    assert policy.datadog.agent_url == "http://127.0.0.1:8126"


@pytest.mark.parametrize(
    ("otel", "exporter", "recording"),
    [
        ({}, "none", False),
        ({"endpoint": "env:OTLP_URL"}, "otlp", True),
        ({"endpoint": "env:OTLP_URL", "exporter": None}, "otlp", True),
        ({"exporter": "memory"}, "memory", True),
        ({"exporter": "console"}, "console", True),
        ({"exporter": "memory", "enabled": False}, "memory", False),
        ({"endpoint": "env:OTLP_URL", "exporter": "none"}, "none", False),
    ],
)
def test_exporter_defaults_from_endpoint(
    otel: dict[str, Any], exporter: str, recording: bool
) -> None:
    policy = TelemetryPolicy.model_validate({"otel": otel})
    assert policy.otel.exporter == exporter
    assert policy.otel.recording is recording


@pytest.mark.parametrize(
    "data",
    [
        {"otel": {"endpoint": "http://collector:4318"}},  # a URL literal, not a reference
        {"otel": {"headers": "authorization=Bearer x"}},
        {"otel": {"exporter": "otlp"}},  # no endpoint
        {"otel": {"exporter": "jaeger"}},
        {"otel": {"sample_ratio": 1.5}},
        {"otel": {"unknown": 1}},
        {"datadog": {"agent_url": "127.0.0.1:8126"}},
        {"datadog": {"api_key": "env:DD_API_KEY"}},  # agentless is not offered
        {"prometheus": {"latency_buckets_s": [1, 0.5]}},
        {"prometheus": {"ttft_buckets_s": []}},
        {"capture_content": "yes please"},
    ],
)
def test_rejects(data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        TelemetryPolicy.model_validate(data)


@pytest.mark.parametrize(
    "agent_url", ["http://127.0.0.1:8126", "https://dd-agent.local:8126", "env:DD_TRACE_AGENT_URL"]
)
def test_datadog_agent_url_literal_or_reference(agent_url: str) -> None:
    assert TelemetryPolicy.model_validate({"datadog": {"agent_url": agent_url}}).datadog.agent_url


def test_frozen() -> None:
    policy = TelemetryPolicy()
    with pytest.raises(ValidationError):
        policy.capture_content = True  # type: ignore[misc]


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("http://collector:4318", "http://collector:4318/v1/traces"),
        ("http://collector:4318/", "http://collector:4318/v1/traces"),
        ("https://otlp.example/v1/traces", "https://otlp.example/v1/traces"),
        ("https://gw.example/otlp/v1/traces", "https://gw.example/otlp/v1/traces"),
    ],
)
def test_traces_url(endpoint: str, url: str) -> None:
    assert traces_url(endpoint) == url


@pytest.mark.parametrize("endpoint", ["collector:4318", "ftp://collector", "http://"])
def test_traces_url_rejects(endpoint: str) -> None:
    with pytest.raises(ConfigError):
        traces_url(endpoint)


@pytest.mark.parametrize(
    ("value", "headers"),
    [
        (None, {}),
        ("", {}),
        ("Authorization=Bearer abc", {"authorization": "Bearer abc"}),
        ("a=1, b = 2 ,", {"a": "1", "b": "2"}),
        ("x-token=a=b", {"x-token": "a=b"}),
    ],
)
def test_otlp_headers(value: str | None, headers: dict[str, str]) -> None:
    assert otlp_headers(value) == headers


@pytest.mark.parametrize("value", ["novalue", "=x"])
def test_otlp_headers_rejects(value: str) -> None:
    with pytest.raises(ConfigError):
        otlp_headers(value)
