"""The fair queue inside one process (the embedded default: one ingress replica)."""

from __future__ import annotations

import itertools
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from serve.fairshare.queue import QueueStats
from serve.fairshare.refusal import HoldTimes, queue_timeout, retry_after_s
from serve.fairshare.slot import Slot

__all__ = ["MemoryFairQueue"]


@dataclass(eq=False, slots=True)
class _Waiter:
    team: str
    seq: int
    granted: anyio.Event = field(default_factory=anyio.Event)
    slot: Slot | None = None


@dataclass(slots=True)
class _Line:
    """One team's FIFO of waiters; ``head_start`` is the start tag of its first waiter."""

    weight: float
    head_start: float
    waiters: deque[_Waiter] = field(default_factory=deque)


@dataclass(slots=True)
class _Model:
    held: set[str] = field(default_factory=set)
    lines: dict[str, _Line] = field(default_factory=dict)  # teams with someone waiting
    finish: dict[str, float] = field(default_factory=dict)  # each team's last finish tag
    vtime: float = 0.0  # the start tag of the latest grant
    capacity: int = 1  # as the latest caller gave it

    def start(self, team: str) -> float:
        return max(self.finish.get(team, 0.0), self.vtime)

    def charge(self, team: str, start: float, weight: float) -> None:
        self.finish[team] = start + 1.0 / weight
        self.vtime = max(self.vtime, start)

    @property
    def waiting(self) -> int:
        return sum(len(line.waiters) for line in self.lines.values())


class MemoryFairQueue:
    def __init__(self) -> None:
        self._models: dict[str, _Model] = {}
        self._seq = itertools.count()
        self._holds = HoldTimes()

    async def acquire(
        self,
        model: str,
        team: str,
        weight: float,
        capacity: int,
        max_wait_s: float,
        *,
        lease_s: float = 30.0,
        on_queued: Callable[[], None] | None = None,
    ) -> Slot:
        state = self._models.setdefault(model, _Model())
        state.capacity = capacity
        self._pump(state, model)  # a caller may bring a larger capacity
        if len(state.held) < capacity and not state.lines:
            state.charge(team, state.start(team), weight)
            return self._grant(state, model, team, 0.0)
        waiter = _Waiter(team, next(self._seq))
        line = state.lines.get(team)
        if line is None:
            line = state.lines[team] = _Line(weight, state.start(team))
        line.weight = weight
        line.waiters.append(waiter)
        started = time.monotonic()
        if on_queued is not None:
            on_queued()
        try:
            with anyio.move_on_after(max_wait_s):
                await waiter.granted.wait()
        except BaseException:
            # Cancelled (client gone): leave the line, or pass on a slot granted meanwhile.
            self._leave(state, waiter)
            if waiter.slot is not None:
                await waiter.slot.release()
            raise
        if waiter.slot is not None:  # granted (possibly in the same instant as the timeout)
            waiter.slot.waited_s = time.monotonic() - started
            return waiter.slot
        self._leave(state, waiter)
        retry = retry_after_s(self._holds.mean(model), state.waiting, capacity)
        raise queue_timeout(model, team, time.monotonic() - started, retry)

    async def release(self, slot: Slot) -> None:
        await slot.release()

    async def stats(self, model: str) -> QueueStats:
        state = self._models.get(model)
        if state is None:
            return QueueStats(0, 0)
        return QueueStats(len(state.held), state.waiting)

    async def aclose(self) -> None:
        self._models.clear()

    # -- internals ----------------------------------------------------------------------

    def _grant(self, state: _Model, model: str, team: str, waited_s: float) -> Slot:
        slot_id = uuid.uuid4().hex
        state.held.add(slot_id)

        async def free(slot: Slot) -> None:
            self._holds.observe(model, slot.held_s)
            state.held.discard(slot.id)
            self._pump(state, model)

        return Slot(slot_id, model, team, waited_s, free)

    def _pump(self, state: _Model, model: str) -> None:
        """Hand free slots to the heads of the lines, smallest start tag first."""
        while len(state.held) < state.capacity and state.lines:
            team, line = min(
                state.lines.items(), key=lambda item: (item[1].head_start, item[1].waiters[0].seq)
            )
            waiter = line.waiters.popleft()
            state.charge(team, line.head_start, line.weight)
            if line.waiters:
                line.head_start = state.start(team)
            else:
                del state.lines[team]
            waiter.slot = self._grant(state, model, team, 0.0)
            waiter.granted.set()

    @staticmethod
    def _leave(state: _Model, waiter: _Waiter) -> None:
        line = state.lines.get(waiter.team)
        if line is None or waiter not in line.waiters:
            return
        line.waiters.remove(waiter)
        if not line.waiters:
            del state.lines[waiter.team]
