"""The circuit breaker's state machine, on a fake clock."""

from __future__ import annotations

import pytest

from serve.routing.breaker import Admission, BreakerBoard, BreakerState, CircuitBreaker
from serve.routing.clock import FakeClock
from serve.routing.policy import BreakerPolicy


def breaker(
    clock: FakeClock, threshold: int = 3, cooldown: float = 30.0, probes: int = 1
) -> CircuitBreaker:
    policy = BreakerPolicy(
        failure_threshold=threshold, cooldown_s=cooldown, half_open_probes=probes
    )
    return CircuitBreaker("backend", policy, clock)


def state(b: CircuitBreaker) -> BreakerState:
    """Read the state afresh (time may have moved it), outside mypy's narrowing."""
    return b.state


def admit(b: CircuitBreaker) -> Admission:
    admission = b.admit()
    assert admission is not None, f"breaker {state(b)} refused a call"
    return admission


def fail(b: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        admit(b).failure()


def open_breaker(b: CircuitBreaker) -> None:
    fail(b, b.policy.failure_threshold)
    assert state(b) == "open"


@pytest.mark.parametrize("threshold", [1, 3, 5])
def test_opens_after_exactly_n_consecutive_failures(threshold: int) -> None:
    b = breaker(FakeClock(), threshold=threshold)
    fail(b, threshold - 1)
    assert state(b) == "closed" and b.consecutive_failures == threshold - 1
    fail(b, 1)
    assert state(b) == "open"
    assert b.admit() is None


def test_a_success_resets_the_consecutive_count() -> None:
    b = breaker(FakeClock(), threshold=3)
    fail(b, 2)
    admit(b).success()
    fail(b, 2)
    assert state(b) == "closed" and b.consecutive_failures == 2


def test_a_release_is_neutral() -> None:
    b = breaker(FakeClock(), threshold=3)
    fail(b, 2)
    admit(b).release()  # e.g. a client error or a cancelled call
    assert b.consecutive_failures == 2
    fail(b, 1)
    assert state(b) == "open"


def test_an_outcome_counts_once() -> None:
    b = breaker(FakeClock(), threshold=2)
    admission = admit(b)
    admission.failure()
    admission.failure()
    admission.success()
    assert state(b) == "closed" and b.consecutive_failures == 1


def test_rejects_during_the_cooldown_and_says_for_how_long() -> None:
    clock = FakeClock()
    b = breaker(clock, cooldown=30)
    open_breaker(b)
    clock.advance(12)
    assert b.admit() is None
    assert b.retry_in_s() == pytest.approx(18)
    clock.advance(17.9)
    assert b.admit() is None and state(b) == "open"


@pytest.mark.parametrize(
    ("probe_outcome", "state_after", "admits_after"),
    [
        ("success", "closed", True),
        ("failure", "open", False),
        ("release", "half_open", True),  # a cancelled probe gives its slot back
    ],
)
def test_half_open_probe_decides(probe_outcome: str, state_after: str, admits_after: bool) -> None:
    clock = FakeClock()
    b = breaker(clock, cooldown=30)
    open_breaker(b)
    clock.advance(30)
    assert state(b) == "half_open"
    probe = admit(b)
    assert probe.probe
    assert b.admit() is None  # one probe at a time
    getattr(probe, probe_outcome)()
    assert state(b) == state_after
    assert (b.admit() is not None) is admits_after


def test_a_failed_probe_starts_a_fresh_cooldown() -> None:
    clock = FakeClock()
    b = breaker(clock, cooldown=30)
    open_breaker(b)
    clock.advance(30)
    admit(b).failure()
    assert b.retry_in_s() == pytest.approx(30)
    clock.advance(29)
    assert b.admit() is None
    clock.advance(1)
    assert state(b) == "half_open"


def test_half_open_admits_up_to_the_probe_limit_concurrently() -> None:
    clock = FakeClock()
    b = breaker(clock, probes=2)
    open_breaker(b)
    clock.advance(30)
    first, second = admit(b), admit(b)
    assert b.admit() is None
    first.release()
    third = admit(b)
    second.success()
    assert state(b) == "closed"
    third.failure()  # a probe from the half-open period cannot reopen a closed breaker
    assert state(b) == "closed" and b.consecutive_failures == 0


def test_failures_of_calls_begun_before_a_recovery_do_not_count_against_it() -> None:
    clock = FakeClock()
    b = breaker(clock, threshold=2)
    stuck = [admit(b), admit(b)]  # in flight through the outage
    open_breaker(b)
    clock.advance(30)
    admit(b).success()
    assert state(b) == "closed"
    for call in stuck:
        call.failure()  # they time out only now
    assert state(b) == "closed" and b.consecutive_failures == 0


def test_only_a_probe_can_close_an_open_breaker() -> None:
    clock = FakeClock()
    b = breaker(clock, threshold=2)
    slow = admit(b)  # admitted while closed, still in flight
    open_breaker(b)
    slow.success()
    assert state(b) == "open"
    clock.advance(30)
    late = admit(b)
    assert state(b) == "half_open"
    late.failure()
    assert state(b) == "open"


def test_board_keeps_one_breaker_per_backend_and_reports_states() -> None:
    clock = FakeClock()
    board = BreakerBoard(clock)
    policy = BreakerPolicy(failure_threshold=1)
    a = board.get("a", policy)
    assert board.get("a", policy) is a
    assert board.get("b", policy) is not a
    fail(a, 1)
    assert board.states() == {"a": "open", "b": "closed"}
    replaced = board.get("a", BreakerPolicy(failure_threshold=2))  # a reloaded policy
    assert replaced is not a and replaced.state == "closed"
