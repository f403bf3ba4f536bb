"""`MetricSink` on ray.util.metrics: a Serve replica's metrics appear on Ray's metrics
endpoint (the node's metrics agent, scraped by Prometheus / the Datadog agent), named
``ray_<name>``. Works without a Ray cluster too (values then go nowhere)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from serve.telemetry.metric_sink import CounterMetric, HistogramMetric, check_metric

__all__ = ["RaySink"]


class _Counter:
    __slots__ = ("_metric",)

    def __init__(self, metric: Any) -> None:
        self._metric = metric

    def inc(self, value: float, labels: Mapping[str, str]) -> None:
        self._metric.inc(value, tags=dict(labels))


class _Histogram:
    __slots__ = ("_metric",)

    def __init__(self, metric: Any) -> None:
        self._metric = metric

    def observe(self, value: float, labels: Mapping[str, str]) -> None:
        self._metric.observe(value, tags=dict(labels))


class RaySink:
    def __init__(self) -> None:
        from ray.util import metrics  # imported here: Ray is heavy and only Serve needs it

        self._metrics = metrics

    def counter(self, name: str, description: str, labels: Sequence[str]) -> CounterMetric:
        check_metric(name, labels)
        return _Counter(self._metrics.Counter(name, description, tag_keys=tuple(labels)))

    def histogram(
        self, name: str, description: str, labels: Sequence[str], buckets: Sequence[float]
    ) -> HistogramMetric:
        check_metric(name, labels)
        metric = self._metrics.Histogram(
            name, description, boundaries=list(buckets), tag_keys=tuple(labels)
        )
        return _Histogram(metric)
