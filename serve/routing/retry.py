"""Which failures deserve another try, and how long to wait before it.

Retryable means the backend, not the request, was at fault: it was rate limited (429),
overloaded (503), broken (502) or slow (504), or could not be reached. A client error
(400, 401, 403, 404, 413) would fail the same way on every backend and every retry, so it
is returned at once.
"""

from __future__ import annotations

import math
import random

from serve.errors import GatewayError, Overloaded, RateLimited, UpstreamError, UpstreamTimeout
from serve.routing.policy import RetryPolicy

__all__ = ["RETRYABLE", "backoff_delay", "is_retryable", "retry_after_s"]

RETRYABLE: tuple[type[GatewayError], ...] = (
    RateLimited,
    Overloaded,
    UpstreamError,
    UpstreamTimeout,
)


def is_retryable(error: BaseException) -> bool:
    """A backend-side failure: a retryable gateway error or a connection-level `OSError`."""
    return isinstance(error, (*RETRYABLE, OSError))


def retry_after_s(error: BaseException) -> float | None:
    """The backend's ``retry-after`` in seconds, if it sent a usable one.

    Only the delta-seconds form is read; an HTTP date (rare from model APIs, and subject to
    clock skew) is ignored, falling back to computed backoff.
    """
    if not isinstance(error, GatewayError):
        return None
    for key, value in error.headers.items():
        if key.lower() == "retry-after":
            try:
                seconds = float(value)
            except ValueError:
                return None
            return seconds if math.isfinite(seconds) and seconds >= 0 else None
    return None


def backoff_delay(
    policy: RetryPolicy, failures: int, rng: random.Random, retry_after: float | None = None
) -> float | None:
    """Seconds to wait before the next try on the same model, after ``failures`` failures.

    ``None`` means do not retry here: the backend asked for a longer pause than
    ``policy.max_delay_s``, so waiting would cost more than trying the next model.
    """
    if failures < 1:
        raise ValueError("backoff_delay is for after a failure (failures >= 1)")
    if retry_after is not None:
        return retry_after if retry_after <= policy.max_delay_s else None
    ceiling = min(policy.max_delay_s, policy.base_delay_s * 2.0 ** (failures - 1))
    if policy.jitter == "full":
        return rng.uniform(0.0, ceiling)
    if policy.jitter == "equal":
        return ceiling / 2 + rng.uniform(0.0, ceiling / 2)
    return ceiling
