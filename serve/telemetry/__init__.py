"""Observability by default: OpenTelemetry traces, Prometheus metrics, Datadog LLM Obs.

See docs/observability.md. `Telemetry` traces the request path; `build_observers` returns
the `RequestObserver`s (metrics, Datadog) that consume each finished `RequestRecord`.
"""

from serve.telemetry.observers import build_observers
from serve.telemetry.policy import DatadogPolicy, OtelPolicy, PrometheusPolicy, TelemetryPolicy
from serve.telemetry.trace import SpanHandle, Trace
from serve.telemetry.tracing import Telemetry

__all__ = [
    "DatadogPolicy",
    "OtelPolicy",
    "PrometheusPolicy",
    "SpanHandle",
    "Telemetry",
    "TelemetryPolicy",
    "Trace",
    "build_observers",
]
