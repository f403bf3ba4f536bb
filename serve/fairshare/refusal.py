"""The 429 a waiter gets when its bounded wait ends, with an honest ``retry-after``."""

from __future__ import annotations

import math

from serve.errors import RateLimited

__all__ = ["QUEUE_TIMEOUT", "HoldTimes", "queue_timeout", "retry_after_s"]

QUEUE_TIMEOUT = "fair_share_queue_timeout"
_MAX_RETRY_AFTER_S = 60


class HoldTimes:
    """Exponentially weighted mean of how long slots are held, per model (this replica)."""

    def __init__(self, alpha: float = 0.2) -> None:
        self._alpha = alpha
        self._mean: dict[str, float] = {}

    def observe(self, model: str, held_s: float) -> None:
        old = self._mean.get(model)
        self._mean[model] = held_s if old is None else old + self._alpha * (held_s - old)

    def mean(self, model: str) -> float | None:
        return self._mean.get(model)


def retry_after_s(mean_hold_s: float | None, waiting: int, capacity: int) -> int:
    """Seconds until the queue ahead has likely drained: waiters / capacity x hold time."""
    if mean_hold_s is None:
        return 1
    estimate = math.ceil(mean_hold_s * (waiting + 1) / max(1, capacity))
    return min(_MAX_RETRY_AFTER_S, max(1, estimate))


def queue_timeout(model: str, team: str, waited_s: float, retry_after: int) -> RateLimited:
    return RateLimited(
        f"The model '{model}' is at its shared capacity and team '{team}' waited "
        f"{waited_s:.0f} s for its fair share; retry later.",
        code=QUEUE_TIMEOUT,
        headers={"retry-after": str(retry_after)},
    )
