"""The seam between raygate's metrics and a metrics library.

`RaySink` (ray.util.metrics: what Ray's metrics endpoint exports from a Serve replica)
and `PrometheusSink` (a prometheus_client registry: tests and tools outside Ray).
Names are given without a unit suffix for counters (``raygate_requests``); each sink
exports them the way its library does (prometheus_client adds ``_total``; Ray prefixes
``ray_``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Protocol

__all__ = ["METRIC_NAME", "CounterMetric", "HistogramMetric", "MetricSink", "check_metric"]

METRIC_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class CounterMetric(Protocol):
    def inc(self, value: float, labels: Mapping[str, str]) -> None: ...


class HistogramMetric(Protocol):
    def observe(self, value: float, labels: Mapping[str, str]) -> None: ...


class MetricSink(Protocol):
    def counter(self, name: str, description: str, labels: Sequence[str]) -> CounterMetric: ...

    def histogram(
        self, name: str, description: str, labels: Sequence[str], buckets: Sequence[float]
    ) -> HistogramMetric: ...


def check_metric(name: str, labels: Sequence[str]) -> None:
    """Refuse names either library would drop or mangle (Ray only warns and discards)."""
    if not METRIC_NAME.match(name):
        raise ValueError(f"invalid metric name {name!r}")
    for label in labels:
        if not METRIC_NAME.match(label) or label.startswith("__"):
            raise ValueError(f"invalid label name {label!r} on metric {name!r}")
    if len(set(labels)) != len(labels):
        raise ValueError(f"duplicate label names on metric {name!r}")
