"""Routing and reliability: which model answers a request, and how failures are survived.

Pure asyncio (no Ray, no HTTP): the gateway plans a request with `RoutePlanner`
(weighted and per-team splits, aliases, evaluation-approved fallbacks) and runs the plan
with `Executor` (retries with backoff and ``retry-after``, per-model time limits, one
`CircuitBreaker` per backend, stream fallback before the first token). The executor
reports which model answered, for the response's ``model`` and ``x-raygate-fallback``.

Config models (`ReliabilityPolicy`, `RouteConfig`, `EvaluationConfig`) and their
cross-checks (`validate_fallbacks`, `validate_routes`) are meant to be fields and
validators of the platform config.
"""

from serve.routing.breaker import Admission, BreakerBoard, BreakerState, CircuitBreaker
from serve.routing.clock import Clock, FakeClock, SystemClock, Timer, deadline
from serve.routing.executor import Attempt, AttemptResult, Executor, Outcome, Stream
from serve.routing.plan import Plan, RoutePlanner
from serve.routing.policy import (
    ApprovedPair,
    BreakerPolicy,
    EvaluationConfig,
    ReliabilityPolicy,
    RetryPolicy,
    RouteConfig,
    WeightedTarget,
    validate_fallbacks,
    validate_routes,
)
from serve.routing.retry import RETRYABLE, backoff_delay, is_retryable, retry_after_s

__all__ = [
    "RETRYABLE",
    "Admission",
    "ApprovedPair",
    "Attempt",
    "AttemptResult",
    "BreakerBoard",
    "BreakerPolicy",
    "BreakerState",
    "CircuitBreaker",
    "Clock",
    "EvaluationConfig",
    "Executor",
    "FakeClock",
    "Outcome",
    "Plan",
    "ReliabilityPolicy",
    "RetryPolicy",
    "RouteConfig",
    "RoutePlanner",
    "Stream",
    "SystemClock",
    "Timer",
    "WeightedTarget",
    "backoff_delay",
    "deadline",
    "is_retryable",
    "retry_after_s",
    "validate_fallbacks",
    "validate_routes",
]
