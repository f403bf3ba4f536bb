"""Usage report and model inventory rows, and the percentile they use."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

__all__ = ["InventoryRow", "UsageRow", "percentile"]


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of unsorted values; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class UsageRow:
    team: str | None
    model: str | None
    day: str  # YYYY-MM-DD (UTC)
    requests: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    errors: int  # outcome error or rejected
    cache_hits: int  # exact or semantic
    p50_ms: float | None  # latency of answered (ok) requests
    p95_ms: float | None
    latency_samples: int  # how many latencies fed p50/p95 (capped per group)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def cache_hit_rate(self) -> float:
        return self.cache_hits / self.requests if self.requests else 0.0

    def public(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "object": "usage.row",
            "error_rate": self.error_rate,
            "cache_hit_rate": self.cache_hit_rate,
        }


@dataclass(frozen=True, slots=True)
class InventoryRow:
    """Which team and key used which model: what a deprecation has to reach."""

    team: str
    key_id: str | None
    model_requested: str | None
    model_served: str | None
    first_seen: datetime
    last_seen: datetime
    requests: int

    def public(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "object": "usage.inventory",
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
        }
