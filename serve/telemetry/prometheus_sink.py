"""`MetricSink` on a prometheus_client registry (its own by default, never the global)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from serve.telemetry.metric_sink import CounterMetric, HistogramMetric, check_metric

__all__ = ["PrometheusSink"]


class _Counter:
    __slots__ = ("_metric",)

    def __init__(self, metric: Counter) -> None:
        self._metric = metric

    def inc(self, value: float, labels: Mapping[str, str]) -> None:
        self._metric.labels(**labels).inc(value)


class _Histogram:
    __slots__ = ("_metric",)

    def __init__(self, metric: Histogram) -> None:
        self._metric = metric

    def observe(self, value: float, labels: Mapping[str, str]) -> None:
        self._metric.labels(**labels).observe(value)


class PrometheusSink:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()

    def counter(self, name: str, description: str, labels: Sequence[str]) -> CounterMetric:
        check_metric(name, labels)
        return _Counter(Counter(name, description, tuple(labels), registry=self.registry))

    def histogram(
        self, name: str, description: str, labels: Sequence[str], buckets: Sequence[float]
    ) -> HistogramMetric:
        check_metric(name, labels)
        metric = Histogram(
            name, description, tuple(labels), registry=self.registry, buckets=tuple(buckets)
        )
        return _Histogram(metric)

    def render(self) -> str:
        """The registry in the Prometheus text exposition format."""
        return generate_latest(self.registry).decode()
