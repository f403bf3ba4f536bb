"""Where finished spans go: OTLP/HTTP to a collector, the console, or memory (tests).

OTLP and console export in batches from a background thread (never on the request path);
the in-memory exporter is synchronous so a test sees a span as soon as it ends.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from serve.errors import ConfigError
from serve.settings import resolve_optional, resolve_secret
from serve.telemetry.policy import OtelPolicy

__all__ = ["build_exporter", "otlp_headers", "span_processor", "traces_url"]


def traces_url(endpoint: str) -> str:
    """A collector base URL gets the OTLP/HTTP traces path; a full URL is kept."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"otel.endpoint must be an http(s) URL, got {endpoint[:40]!r}")
    if parts.path in ("", "/"):
        return endpoint.rstrip("/") + "/v1/traces"
    return endpoint


def otlp_headers(value: str | None) -> dict[str, str]:
    """``key=value,key2=value2`` (the OTEL_EXPORTER_OTLP_HEADERS format)."""
    headers: dict[str, str] = {}
    for item in (value or "").split(","):
        if not item.strip():
            continue
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError("otel.headers must look like 'key=value,key2=value2'")
        headers[key.strip().lower()] = val.strip()
    return headers


def build_exporter(policy: OtelPolicy) -> SpanExporter | None:
    if policy.exporter == "otlp":
        assert policy.endpoint is not None  # the policy checked it
        return OTLPSpanExporter(
            endpoint=traces_url(resolve_secret(policy.endpoint)),
            headers=otlp_headers(resolve_optional(policy.headers)),
            timeout=policy.export_timeout_s,
        )
    if policy.exporter == "console":
        return ConsoleSpanExporter(service_name=policy.service_name)
    if policy.exporter == "memory":
        return InMemorySpanExporter()
    return None


def span_processor(exporter: SpanExporter) -> SpanProcessor:
    if isinstance(exporter, InMemorySpanExporter):
        return SimpleSpanProcessor(exporter)
    return BatchSpanProcessor(exporter)
