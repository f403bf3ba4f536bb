"""Call a plan's models in order until one answers: retries, time limits, breakers.

For each model of the plan: ask its breaker (open: skip it without calling), call it under
its time limit, and on a retryable failure retry with backoff up to ``max_attempts``; a
timeout, an exhausted retry budget, a long ``retry-after`` or an open breaker moves on
to the next model. A client error (400, 401, 403, 404, 413) is raised at once: a bad
request is bad on every backend. When every model failed, the error of the last model
actually called is raised (its status and ``retry-after`` intact); when none could be
called, `Overloaded` (503) with a ``retry-after`` for the earliest breaker to half-open.

Streams: `Executor.stream` returns once the first item is in hand, so a failure before it
is retried or falls back invisibly to the client, and total failure is still an ordinary
HTTP error. After the first item the served model is fixed: an error, or silence longer
than ``idle_timeout_s``, ends the stream with a `GatewayError` and closes the upstream
iterator. Time limits run in the caller's task (no helper tasks to leak), and a
cancellation (client gone) closes the upstream iterator and is never held against the
backend.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar

from serve.errors import GatewayError, Overloaded, UpstreamError, UpstreamTimeout
from serve.routing.breaker import BreakerBoard, CircuitBreaker
from serve.routing.clock import Clock, SystemClock, deadline
from serve.routing.policy import ReliabilityPolicy
from serve.routing.retry import backoff_delay, is_retryable, retry_after_s

__all__ = ["Attempt", "AttemptResult", "Executor", "Outcome", "Stream"]

log = logging.getLogger("raygate.routing")

T = TypeVar("T")
R = TypeVar("R")

AttemptResult = Literal["ok", "failed", "timeout", "rejected", "client_error", "cancelled"]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try on one model: what happened, and the backoff waited before it."""

    model: str
    number: int  # 1 for the first try on this model
    result: AttemptResult
    error: GatewayError | None = None
    delay_s: float = 0.0
    elapsed_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    result: T
    model: str  # the model that answered
    primary: str  # the model the plan started with
    attempts: tuple[Attempt, ...]

    @property
    def fallback_used(self) -> bool:
        return self.model != self.primary


class Executor:
    """Runs plans against per-model `ReliabilityPolicy`s (``default`` for unlisted models).

    ``on_attempt`` sees every `Attempt` as it ends (logging, metrics); it must be cheap.
    """

    def __init__(
        self,
        policies: Mapping[str, ReliabilityPolicy] | None = None,
        *,
        default: ReliabilityPolicy | None = None,
        breakers: BreakerBoard | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        on_attempt: Callable[[Attempt], None] | None = None,
    ) -> None:
        self._policies = dict(policies or {})
        self._default = default or ReliabilityPolicy()
        self._clock = clock or SystemClock()
        self.breakers = breakers or BreakerBoard(self._clock)
        self._rng = rng or random.Random()
        self._on_attempt = on_attempt

    def policy(self, model: str) -> ReliabilityPolicy:
        return self._policies.get(model, self._default)

    def breaker(self, model: str) -> CircuitBreaker:
        return self.breakers.get(model, self.policy(model).breaker)

    async def call(self, plan: Sequence[str], attempt: Callable[[str], Awaitable[T]]) -> Outcome[T]:
        """``await attempt(model)`` along the plan until one answers within ``timeout_s``."""

        async def once(model: str, policy: ReliabilityPolicy) -> T:
            try:
                async with deadline(self._clock, policy.timeout_s):
                    return await attempt(model)
            except TimeoutError:
                raise UpstreamTimeout(
                    f"The model '{model}' did not answer within {policy.timeout_s:g} s."
                ) from None

        result, model, attempts = await self._run(plan, once)
        return Outcome(result, model, plan[0], attempts)

    async def stream(
        self, plan: Sequence[str], open_stream: Callable[[str], AsyncIterator[T]]
    ) -> Stream[T]:
        """Open ``open_stream(model)`` along the plan until one yields a first item in time.

        The returned `Stream` yields that item first; iterate it (or ``async with`` it) and
        close it when done.
        """

        async def once(model: str, policy: ReliabilityPolicy) -> tuple[AsyncIterator[T], T]:
            iterator = open_stream(model)
            try:
                async with deadline(self._clock, policy.first_token_timeout_s):
                    first = await anext(iterator)
            except BaseException as exc:
                await _close(iterator)
                if isinstance(exc, TimeoutError):
                    raise UpstreamTimeout(
                        f"The model '{model}' sent nothing within "
                        f"{policy.first_token_timeout_s:g} s."
                    ) from None
                if isinstance(exc, StopAsyncIteration):
                    raise UpstreamError(
                        f"The model '{model}' ended the stream without answering."
                    ) from None
                raise
            return iterator, first

        (iterator, first), model, attempts = await self._run(plan, once)
        return Stream(
            iterator,
            first,
            model=model,
            primary=plan[0],
            attempts=attempts,
            idle_timeout_s=self.policy(model).idle_timeout_s,
            clock=self._clock,
        )

    async def _run(
        self, plan: Sequence[str], once: Callable[[str, ReliabilityPolicy], Awaitable[R]]
    ) -> tuple[R, str, tuple[Attempt, ...]]:
        if not plan:
            raise ValueError("a plan names at least one model")
        attempts: list[Attempt] = []
        last_error: GatewayError | None = None
        for model in plan:
            policy = self.policy(model)
            breaker = self.breakers.get(model, policy.breaker)
            delay = 0.0
            for number in range(1, policy.retry.max_attempts + 1):
                admission = breaker.admit()
                if admission is None:
                    self._record(attempts, model, number, "rejected", None, delay, None)
                    break
                started = self._clock.monotonic()
                try:
                    answer = await once(model, policy)
                except asyncio.CancelledError:
                    admission.release()  # the client left: no verdict on the backend
                    self._record(attempts, model, number, "cancelled", None, delay, started)
                    raise
                except GatewayError as exc:
                    if not is_retryable(exc):
                        admission.release()
                        self._record(attempts, model, number, "client_error", exc, delay, started)
                        raise
                    error = exc
                except OSError:
                    error = UpstreamError(f"The model '{model}' could not be reached.")
                except BaseException:
                    admission.release()  # not a backend verdict: a bug or an exit; pass it on
                    raise
                else:
                    admission.success()
                    self._record(attempts, model, number, "ok", None, delay, started)
                    return answer, model, tuple(attempts)
                admission.failure()
                timed_out = isinstance(error, UpstreamTimeout)
                result: AttemptResult = "timeout" if timed_out else "failed"
                self._record(attempts, model, number, result, error, delay, started)
                last_error = error
                if timed_out or number == policy.retry.max_attempts or breaker.state == "open":
                    break
                wait = backoff_delay(policy.retry, number, self._rng, retry_after_s(error))
                if wait is None:
                    break
                await self._clock.sleep(wait)
                delay = wait
        raise last_error or self._unavailable(plan)

    def _unavailable(self, plan: Sequence[str]) -> Overloaded:
        """No model could even be called: every breaker on the plan is open."""
        wait = min(self.breaker(model).retry_in_s() for model in plan)
        return Overloaded(
            f"The model '{plan[0]}' is temporarily unavailable; retry later.",
            code="backend_unavailable",
            headers={"retry-after": str(max(1, math.ceil(wait)))},
        )

    def _record(
        self,
        attempts: list[Attempt],
        model: str,
        number: int,
        result: AttemptResult,
        error: GatewayError | None,
        delay: float,
        started: float | None,
    ) -> None:
        elapsed = 0.0 if started is None else self._clock.monotonic() - started
        attempt = Attempt(model, number, result, error, delay, elapsed)
        attempts.append(attempt)
        if self._on_attempt is not None:
            try:
                self._on_attempt(attempt)
            except Exception:
                log.exception("on_attempt hook failed")


class Stream(Generic[T]):
    """The served model's stream, first item already received.

    Iterating it applies ``idle_timeout_s`` between items; any failure closes the upstream
    iterator and raises a `GatewayError` (`UpstreamTimeout` for silence). Closing it
    (``aclose``, ``async with``) closes the upstream iterator; closing twice is harmless.
    """

    def __init__(
        self,
        iterator: AsyncIterator[T],
        first: T,
        *,
        model: str,
        primary: str,
        attempts: tuple[Attempt, ...],
        idle_timeout_s: float | None,
        clock: Clock,
    ) -> None:
        self._iterator = iterator
        self._buffer = [first]
        self._idle_timeout_s = idle_timeout_s
        self._clock = clock
        self._closed = False
        self.model = model
        self.primary = primary
        self.attempts = attempts

    @property
    def fallback_used(self) -> bool:
        return self.model != self.primary

    @property
    def closed(self) -> bool:
        return self._closed

    def __aiter__(self) -> Stream[T]:
        return self

    async def __anext__(self) -> T:
        if self._buffer:
            return self._buffer.pop()
        if self._closed:
            raise StopAsyncIteration
        try:
            async with deadline(self._clock, self._idle_timeout_s):
                return await anext(self._iterator)
        except TimeoutError:
            await self.aclose()
            raise UpstreamTimeout(
                f"The model '{self.model}' sent nothing for {self._idle_timeout_s:g} s."
            ) from None
        except OSError:
            await self.aclose()
            raise UpstreamError(f"The connection to the model '{self.model}' failed.") from None
        except BaseException:  # the end, an upstream error, a cancellation: close, pass on
            await self.aclose()
            raise

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._buffer.clear()
            await _close(self._iterator)

    async def __aenter__(self) -> Stream[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def _close(iterator: AsyncIterator[Any]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is None:
        return
    try:
        await aclose()
    except Exception:
        log.debug("closing an upstream stream failed", exc_info=True)
