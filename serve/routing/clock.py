"""Time as a seam: the executor and the breakers read and wait on an injected `Clock`.

Retries, cool-downs and timeouts are all about time; tests must not wait for it. So every
wait in this package goes through a `Clock`: `SystemClock` in production, `FakeClock` in
tests, where a sleep jumps straight to its wake-up time and fires the deadlines it passes
on the way, so a 30 s time-out runs in microseconds and lands on exactly 30.0.

`deadline` is `asyncio.timeout` built on a `Clock` (same cancel-and-convert mechanics),
so production and tests run one code path.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from types import TracebackType
from typing import Protocol

__all__ = ["Clock", "FakeClock", "SystemClock", "Timer", "deadline"]


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...

    async def sleep(self, seconds: float) -> None: ...

    def call_later(self, seconds: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` once, ``seconds`` from now, on the running event loop."""
        ...


class SystemClock:
    """The real clock: `time.monotonic` and the running event loop's timers."""

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def call_later(self, seconds: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(seconds, callback)


class _FakeTimer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """Virtual time for tests: it moves only when a task sleeps on it or a test advances it.

    A `sleep` jumps to its wake-up time at once, firing every earlier timer in order; if
    one of those cancels the sleeping task (a `deadline` expiring), time stops right there,
    so a slow call cut off by a 5 s deadline ends at exactly t=5. This models the
    sequential flows of one request precisely; it is not a general concurrent scheduler
    (two tasks sleeping at once each jump on their own).
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._timers: list[tuple[float, int, _FakeTimer]] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        return self._now

    def call_later(self, seconds: float, callback: Callable[[], None]) -> Timer:
        timer = _FakeTimer(self._now + max(0.0, seconds), callback)
        heapq.heappush(self._timers, (timer.when, next(self._seq), timer))
        return timer

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, firing the timers that fall due, in order."""
        if seconds < 0:
            raise ValueError("time does not go backwards")
        target = self._now + seconds
        while self._timers and self._timers[0][0] <= target:
            self._fire_next()
        self._now = target

    async def sleep(self, seconds: float) -> None:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("FakeClock.sleep needs a running task")
        woken = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not woken.done():
                woken.set_result(None)

        timer = self.call_later(seconds, wake)
        cancels_before = task.cancelling()
        try:
            while not woken.done() and task.cancelling() == cancels_before and self._timers:
                self._fire_next()
            # Always suspend once: a cancellation requested while jumping is delivered here.
            await asyncio.sleep(0)
            await woken
        finally:
            timer.cancel()

    def _fire_next(self) -> None:
        when, _, timer = heapq.heappop(self._timers)
        if timer.cancelled:
            return
        self._now = max(self._now, when)
        timer.callback()


class _Deadline:
    """Cancel the current task after ``seconds`` and raise `TimeoutError` in its place."""

    def __init__(self, clock: Clock, seconds: float | None) -> None:
        self._clock = clock
        self._seconds = seconds
        self._task: asyncio.Task[object] | None = None
        self._timer: Timer | None = None
        self._cancelling = 0
        self.expired = False

    async def __aenter__(self) -> _Deadline:
        if self._seconds is None:
            return self
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("deadline needs a running task")
        self._task = task
        self._cancelling = task.cancelling()
        self._timer = self._clock.call_later(self._seconds, self._expire)
        return self

    def _expire(self) -> None:
        if self._task is not None and not self._task.done():
            self.expired = True
            self._task.cancel()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()
        # Our cancel, and no one else's (an outer cancel keeps the count above ours):
        # turn it into a timeout, exactly as asyncio.timeout does.
        if (
            self.expired
            and self._task is not None
            and self._task.uncancel() <= self._cancelling
            and exc_type is asyncio.CancelledError
        ):
            raise TimeoutError from exc


def deadline(clock: Clock, seconds: float | None) -> _Deadline:
    """``async with deadline(clock, 5):`` — `TimeoutError` if the body runs past 5 s.

    ``None`` means no limit. An outer cancellation (a client going away) still propagates
    as `asyncio.CancelledError`, never as a timeout.
    """
    return _Deadline(clock, seconds)
