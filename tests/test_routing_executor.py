"""Non-streaming execution: retries, backoff, retry-after, timeouts, fallbacks, breakers.

Backends are scripted per model; time is a `FakeClock`, so every wait and timeout is exact
and instant, and the times at which each backend was called prove the schedule.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from serve.errors import (
    AuthenticationFailed,
    GatewayError,
    InvalidRequest,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)
from serve.routing.clock import FakeClock
from serve.routing.executor import Attempt, Executor
from serve.routing.policy import ReliabilityPolicy


@dataclass(frozen=True)
class Slow:
    """Answer, but only after ``seconds`` (of fake time)."""

    seconds: float


@dataclass
class Backends:
    """Scripted backends: each call takes the next step of its model's script (the last
    step repeats); a step is an answer, an exception to raise, or `Slow`."""

    clock: FakeClock
    script: dict[str, list[Any]]
    calls: list[tuple[str, float]] = field(default_factory=list)

    async def __call__(self, model: str) -> str:
        self.calls.append((model, self.clock.monotonic()))
        steps = self.script[model]
        step = steps.pop(0) if len(steps) > 1 else steps[0]
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, Slow):
            await self.clock.sleep(step.seconds)
            return f"{model} after {step.seconds:g} s"
        return str(step)


def policy(**overrides: Any) -> ReliabilityPolicy:
    """A policy with deterministic backoff (no jitter) unless the test asks otherwise."""
    retry = {"jitter": "none", **overrides.pop("retry", {})}
    return ReliabilityPolicy.model_validate({**overrides, "retry": retry})


def setup(
    policies: dict[str, ReliabilityPolicy] | None = None, **script: list[Any]
) -> tuple[Executor, Backends, list[Attempt]]:
    clock = FakeClock()
    seen: list[Attempt] = []
    executor = Executor(
        policies,
        default=policy(),
        clock=clock,
        rng=random.Random(0),
        on_attempt=seen.append,
    )
    return executor, Backends(clock, {m: list(s) for m, s in script.items()}), seen


def results(attempts: tuple[Attempt, ...] | list[Attempt]) -> list[tuple[str, int, str]]:
    return [(a.model, a.number, a.result) for a in attempts]


async def test_the_primary_answers() -> None:
    executor, backends, _ = setup(a=["from a"], b=["from b"])
    outcome = await executor.call(("a", "b"), backends)
    assert (outcome.result, outcome.model, outcome.fallback_used) == ("from a", "a", False)
    assert results(outcome.attempts) == [("a", 1, "ok")]
    assert backends.calls == [("a", 0.0)]


@pytest.mark.parametrize(
    "error",
    [
        UpstreamError("bad gateway"),
        Overloaded("busy"),
        RateLimited("slow down"),
        ConnectionRefusedError("refused"),
    ],
)
async def test_retryable_failures_are_retried_with_exponential_backoff(error: Exception) -> None:
    executor, backends, _ = setup(
        {"a": policy(retry={"max_attempts": 4, "base_delay_s": 0.2, "jitter": "none"})},
        a=[error, error, error, "finally"],
    )
    outcome = await executor.call(("a",), backends)
    assert outcome.result == "finally"
    assert [t for _, t in backends.calls] == pytest.approx([0.0, 0.2, 0.6, 1.4])
    assert [a.delay_s for a in outcome.attempts] == pytest.approx([0.0, 0.2, 0.4, 0.8])
    assert results(outcome.attempts) == [
        ("a", 1, "failed"),
        ("a", 2, "failed"),
        ("a", 3, "failed"),
        ("a", 4, "ok"),
    ]
    assert all(isinstance(a.error, GatewayError) for a in outcome.attempts[:3])


async def test_full_jitter_waits_are_drawn_below_the_exponential_ceiling() -> None:
    clock = FakeClock()
    backends = Backends(clock, {"a": [UpstreamError("x")] * 4 + ["ok"]})
    jittered = policy(
        retry={"max_attempts": 5, "base_delay_s": 1, "max_delay_s": 3, "jitter": "full"}
    )
    executor = Executor({"a": jittered}, clock=clock, rng=random.Random(3))
    outcome = await executor.call(("a",), backends)
    delays = [a.delay_s for a in outcome.attempts[1:]]
    ceilings = [1, 2, 3, 3]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len(set(delays)) == 4  # drawn, not fixed
    assert clock.monotonic() == pytest.approx(sum(delays))


@pytest.mark.parametrize(
    ("retry_after", "calls"),
    [
        ("0", [("a", 0.0), ("a", 0.0)]),
        ("1.5", [("a", 0.0), ("a", 1.5)]),  # the backend's word beats the 0.2 s backoff
        ("4", [("a", 0.0), ("a", 4.0)]),  # at max_delay_s: still waited for
        ("10", [("a", 0.0), ("b", 0.0)]),  # longer: the fallback is tried at once instead
    ],
)
async def test_retry_after_is_honoured_up_to_max_delay(
    retry_after: str, calls: list[tuple[str, float]]
) -> None:
    limited = RateLimited("slow down", headers={"retry-after": retry_after})
    executor, backends, _ = setup(
        {"a": policy(retry={"max_attempts": 2, "max_delay_s": 4, "jitter": "none"})},
        a=[limited, "a ok"],
        b=["b ok"],
    )
    outcome = await executor.call(("a", "b"), backends)
    assert backends.calls == calls
    assert outcome.model == calls[-1][0]


async def test_a_long_retry_after_without_fallback_reaches_the_client() -> None:
    limited = RateLimited("slow down", headers={"retry-after": "30"})
    executor, backends, _ = setup(a=[limited])
    with pytest.raises(RateLimited) as info:
        await executor.call(("a",), backends)
    assert info.value is limited and info.value.headers["retry-after"] == "30"
    assert len(backends.calls) == 1


@pytest.mark.parametrize(
    "error",
    [
        InvalidRequest("bad"),
        AuthenticationFailed("who"),
        PermissionDenied("no"),
        NotFound("gone"),
        PayloadTooLarge("big"),
    ],
)
async def test_client_errors_are_neither_retried_nor_fallen_back_nor_held_against_the_backend(
    error: GatewayError,
) -> None:
    executor, backends, seen = setup(a=[error], b=["b ok"])
    with pytest.raises(type(error)) as info:
        await executor.call(("a", "b"), backends)
    assert info.value is error
    assert backends.calls == [("a", 0.0)]
    assert results(seen) == [("a", 1, "client_error")]
    assert executor.breaker("a").consecutive_failures == 0


async def test_an_exhausted_primary_falls_back_in_plan_order() -> None:
    executor, backends, _ = setup(
        a=[UpstreamError("down")], b=[UpstreamError("down too")], c=["c ok"]
    )
    outcome = await executor.call(("a", "b", "c"), backends)
    assert (outcome.model, outcome.primary, outcome.fallback_used) == ("c", "a", True)
    assert results(outcome.attempts) == [
        ("a", 1, "failed"),
        ("a", 2, "failed"),
        ("b", 1, "failed"),
        ("b", 2, "failed"),
        ("c", 1, "ok"),
    ]
    # Backoff applies within a model, not between models: b starts right after a gives up.
    assert backends.calls == [("a", 0.0), ("a", 0.2), ("b", 0.2), ("b", 0.4), ("c", 0.4)]


async def test_when_everything_fails_the_last_backend_error_is_raised() -> None:
    last = UpstreamError("The model backend failed (HTTP 500).")
    executor, backends, _ = setup(a=[RateLimited("slow")], b=[last])
    with pytest.raises(UpstreamError) as info:
        await executor.call(("a", "b"), backends)
    assert info.value is last and info.value.status == 502


async def test_a_slow_primary_times_out_and_falls_back_to_the_faster_approved_model() -> None:
    executor, backends, _ = setup(
        {"slow": policy(timeout_s=5, retry={"max_attempts": 3})}, slow=[Slow(60)], fast=["quick"]
    )
    outcome = await executor.call(("slow", "fast"), backends)
    assert (outcome.result, outcome.model, outcome.fallback_used) == ("quick", "fast", True)
    # Cut off at exactly 5 s and not retried (a slow model stays slow): fast answers at t=5.
    assert backends.calls == [("slow", 0.0), ("fast", 5.0)]
    timeout = outcome.attempts[0]
    assert (timeout.result, timeout.elapsed_s) == ("timeout", 5.0)
    assert isinstance(timeout.error, UpstreamTimeout)


async def test_a_timeout_without_fallback_is_a_504_naming_the_limit() -> None:
    executor, backends, _ = setup({"slow": policy(timeout_s=5)}, slow=[Slow(60)])
    with pytest.raises(UpstreamTimeout) as info:
        await executor.call(("slow",), backends)
    assert info.value.status == 504 and "5 s" in info.value.message
    assert backends.clock.monotonic() == 5.0


async def test_a_fast_enough_answer_is_not_cut_off() -> None:
    executor, backends, _ = setup({"a": policy(timeout_s=5)}, a=[Slow(4.5)])
    outcome = await executor.call(("a",), backends)
    assert outcome.result == "a after 4.5 s"


def breaker_policy(**breaker: Any) -> ReliabilityPolicy:
    return policy(retry={"max_attempts": 1}, breaker=breaker)


async def test_an_open_breaker_skips_the_backend_without_calling_it() -> None:
    executor, backends, _ = setup(
        {"a": breaker_policy(failure_threshold=2)}, a=[UpstreamError("down")], b=["b ok"]
    )
    for _ in range(2):
        await executor.call(("a", "b"), backends)
    assert executor.breaker("a").state == "open"
    backends.calls.clear()
    outcome = await executor.call(("a", "b"), backends)
    assert backends.calls == [("b", 0.0)]  # a is not called: a dead provider costs nothing
    assert results(outcome.attempts) == [("a", 1, "rejected"), ("b", 1, "ok")]


async def test_with_every_breaker_open_the_call_fails_fast_with_503_and_retry_after() -> None:
    executor, backends, _ = setup(
        {
            "a": breaker_policy(failure_threshold=1, cooldown_s=30),
            "b": breaker_policy(failure_threshold=1, cooldown_s=60),
        },
        a=[UpstreamError("down")],
        b=[UpstreamError("down")],
    )
    with pytest.raises(UpstreamError):
        await executor.call(("a", "b"), backends)
    backends.clock.advance(10.5)
    backends.calls.clear()
    with pytest.raises(Overloaded) as info:
        await executor.call(("a", "b"), backends)
    assert backends.calls == []
    assert info.value.status == 503 and info.value.headers == {"retry-after": "20"}


async def test_after_the_cooldown_a_probe_goes_through_and_its_success_closes_the_breaker() -> None:
    executor, backends, _ = setup(
        {"a": breaker_policy(failure_threshold=1, cooldown_s=30)},
        a=[UpstreamError("down"), "recovered"],
        b=["b ok"],
    )
    assert (await executor.call(("a", "b"), backends)).model == "b"
    backends.clock.advance(30)
    assert executor.breaker("a").state == "half_open"
    outcome = await executor.call(("a", "b"), backends)
    assert outcome.model == "a" and executor.breaker("a").state == "closed"


async def test_a_breaker_that_opens_mid_retries_moves_on_without_waiting() -> None:
    executor, backends, _ = setup(
        {"a": policy(retry={"max_attempts": 3}, breaker={"failure_threshold": 1})},
        a=[UpstreamError("down")],
        b=["b ok"],
    )
    outcome = await executor.call(("a", "b"), backends)
    assert backends.calls == [("a", 0.0), ("b", 0.0)]
    assert outcome.model == "b"


@pytest.mark.parametrize("half_open", [False, True])
async def test_cancellation_propagates_and_is_not_held_against_the_backend(
    half_open: bool,
) -> None:
    executor, backends, seen = setup(
        {"a": breaker_policy(failure_threshold=1)}, a=[UpstreamError("down")], b=["b ok"]
    )
    if half_open:
        await executor.call(("a", "b"), backends)
        backends.clock.advance(30)
        assert executor.breaker("a").state == "half_open"
    started, never = asyncio.Event(), asyncio.Event()

    async def hanging(model: str) -> str:
        started.set()
        await never.wait()
        return "unreachable"

    task = asyncio.create_task(executor.call(("a", "b"), hanging))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen[-1].result == "cancelled"
    breaker = executor.breaker("a")
    assert breaker.state == ("half_open" if half_open else "closed")
    assert breaker.consecutive_failures == 0
    assert breaker.admit() is not None  # a cancelled probe gave its slot back


async def test_a_bug_in_the_attempt_propagates_unchanged_and_uncounted() -> None:
    executor, backends, _ = setup(a=[KeyError("bug")], b=["b ok"])
    with pytest.raises(KeyError):
        await executor.call(("a", "b"), backends)
    assert backends.calls == [("a", 0.0)]
    assert executor.breaker("a").consecutive_failures == 0


async def test_a_failing_attempt_hook_does_not_break_the_call() -> None:
    def broken_hook(attempt: Attempt) -> None:
        raise RuntimeError("metrics down")

    backends = Backends(FakeClock(), {"a": ["ok"]})
    executor = Executor(clock=backends.clock, on_attempt=broken_hook)
    assert (await executor.call(("a",), backends)).result == "ok"


async def test_an_empty_plan_is_a_programming_error() -> None:
    executor, backends, _ = setup()
    with pytest.raises(ValueError, match="at least one model"):
        await executor.call((), backends)


async def test_on_the_system_clock_a_hung_backend_is_cut_off_and_the_fallback_answers() -> None:
    never = asyncio.Event()

    async def attempt(model: str) -> str:
        if model == "hung":
            await never.wait()
        return model

    executor = Executor({"hung": policy(timeout_s=0.05)})
    outcome = await executor.call(("hung", "fine"), attempt)
    assert outcome.model == "fine"
    assert [a.result for a in outcome.attempts] == ["timeout", "ok"]
    assert 0.04 <= outcome.attempts[0].elapsed_s < 5
