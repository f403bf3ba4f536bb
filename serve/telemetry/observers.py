"""The `RequestObserver`s a policy asks for: Prometheus metrics, Datadog LLM Obs."""

from __future__ import annotations

from collections.abc import Iterable

from serve.record import RequestObserver
from serve.telemetry.metric_sink import MetricSink
from serve.telemetry.metrics import MetricsObserver
from serve.telemetry.policy import TelemetryPolicy

__all__ = ["build_observers", "metric_sink"]


def metric_sink(kind: str) -> MetricSink:
    if kind == "ray":
        from serve.telemetry.ray_sink import RaySink

        return RaySink()
    from serve.telemetry.prometheus_sink import PrometheusSink

    return PrometheusSink()


def build_observers(
    policy: TelemetryPolicy,
    *,
    teams: Iterable[str],
    models: Iterable[str],
    sink: MetricSink | None = None,
) -> list[RequestObserver]:
    """``teams``/``models``: the configured names metrics may use as labels (models,
    aliases and routes); ``sink`` overrides the one `prometheus.sink` names."""
    observers: list[RequestObserver] = []
    if policy.prometheus.enabled:
        chosen = sink if sink is not None else metric_sink(policy.prometheus.sink)
        observers.append(MetricsObserver(chosen, policy.prometheus, teams=teams, models=models))
    if policy.datadog.enabled:
        from serve.telemetry.datadog import DatadogObserver

        observers.append(DatadogObserver(policy.datadog, policy.capture_content))
    return observers
