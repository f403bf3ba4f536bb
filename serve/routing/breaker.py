"""Circuit breakers: a backend that keeps failing is skipped, not waited for.

closed --N consecutive failures--> open --cooldown--> half_open --probe ok--> closed
                                    ^                      |
                                    +----probe failed------+

Each call the breaker lets through gets an `Admission`, and its outcome is reported on
that admission, exactly once. Tying outcomes to admissions (rather than bare
``record_success()`` calls) keeps the state honest under concurrency: only a probe can
close an open breaker; a call stuck through an outage cannot reopen the recovered backend
when it finally times out; a half-open probe slot is returned when its call is cancelled
(otherwise the breaker would stay half-open and reject forever); and a client error or a
cancellation (``release``) counts neither way.

All methods are synchronous, so the state is consistent within one event loop without
locks. State is per process: each ingress replica learns about a dead backend on its own,
which costs at most ``failure_threshold`` failed calls per replica.
"""

from __future__ import annotations

from typing import Literal

from serve.routing.clock import Clock, SystemClock
from serve.routing.policy import BreakerPolicy

__all__ = ["Admission", "BreakerBoard", "BreakerState", "CircuitBreaker"]

BreakerState = Literal["closed", "open", "half_open"]


class Admission:
    """Permission for one call; report how it went with one of the three methods."""

    __slots__ = ("_breaker", "_done", "generation", "probe")

    def __init__(self, breaker: CircuitBreaker, generation: int, probe: bool) -> None:
        self._breaker = breaker
        self._done = False
        self.generation = generation
        self.probe = probe

    def success(self) -> None:
        """The backend answered."""
        if self._claim():
            self._breaker._on_success(self)

    def failure(self) -> None:
        """The backend failed (error status, unreachable, too slow)."""
        if self._claim():
            self._breaker._on_failure(self)

    def release(self) -> None:
        """The call ended without a verdict on the backend (client error, cancellation)."""
        if self._claim():
            self._breaker._on_release(self)

    def _claim(self) -> bool:
        if self._done:
            return False
        self._done = True
        return True


class CircuitBreaker:
    def __init__(self, name: str, policy: BreakerPolicy, clock: Clock | None = None) -> None:
        self.name = name
        self.policy = policy
        self._clock = clock or SystemClock()
        self._state: BreakerState = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._probes = 0
        # Bumped on every state change; an outcome from an earlier state is ignored.
        self._generation = 0

    @property
    def state(self) -> BreakerState:
        if self._state == "open" and self.retry_in_s() == 0:
            self._transition("half_open")
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def retry_in_s(self) -> float:
        """Seconds until the breaker lets a probe through (0 when calls may go now)."""
        if self._state != "open":
            return 0.0
        return max(0.0, self._opened_at + self.policy.cooldown_s - self._clock.monotonic())

    def admit(self) -> Admission | None:
        """An admission for one call, or ``None``: do not call this backend now."""
        state = self.state
        if state == "closed":
            return Admission(self, self._generation, probe=False)
        if state == "half_open" and self._probes < self.policy.half_open_probes:
            self._probes += 1
            return Admission(self, self._generation, probe=True)
        return None

    def _on_success(self, admission: Admission) -> None:
        if self._state == "closed":
            self._failures = 0  # the latest answer, whenever its call began
        elif self._state == "half_open" and admission.probe:
            self._transition("closed")

    def _on_failure(self, admission: Admission) -> None:
        if admission.generation != self._generation:
            return  # began before the last state change: e.g. a call stuck through an outage
        if self._state == "closed":
            self._failures += 1
            if self._failures >= self.policy.failure_threshold:
                self._transition("open")
        elif self._state == "half_open" and admission.probe:
            self._transition("open")

    def _on_release(self, admission: Admission) -> None:
        if admission.generation == self._generation and admission.probe:
            self._probes -= 1

    def _transition(self, state: BreakerState) -> None:
        self._state = state
        self._generation += 1
        self._failures = 0
        self._probes = 0
        if state == "open":
            self._opened_at = self._clock.monotonic()


class BreakerBoard:
    """One breaker per backend, created on first use with that backend's policy."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, name: str, policy: BreakerPolicy) -> CircuitBreaker:
        breaker = self._breakers.get(name)
        if breaker is None or breaker.policy != policy:
            breaker = self._breakers[name] = CircuitBreaker(name, policy, self._clock)
        return breaker

    def states(self) -> dict[str, BreakerState]:
        """Each known backend's state, for readiness and metrics."""
        return {name: breaker.state for name, breaker in self._breakers.items()}
