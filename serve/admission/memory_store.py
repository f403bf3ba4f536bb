"""Admission state in one process (the embedded default; the fail-open fallback).

Atomic because nothing here awaits: an admission runs start to finish on the event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from serve.admission.checks import Check, CheckState, Concurrency, Verdict, Window

__all__ = ["MemoryAdmissionStore"]


@dataclass
class _Window:
    entries: dict[str, tuple[float, int]] = field(default_factory=dict)  # rid -> (at, amount)


@dataclass
class _Budget:
    spent: int = 0
    reserved: dict[str, tuple[float, int]] = field(default_factory=dict)  # rid -> (expiry, amt)


class MemoryAdmissionStore:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[str, _Window] = {}
        self._leases: dict[str, dict[str, float]] = {}  # key -> rid -> expiry
        self._budgets: dict[str, _Budget] = {}

    async def admit(self, rid: str, checks: Sequence[Check], lease_s: float) -> Verdict:
        now = self._clock()
        states: list[CheckState] = []
        for index, check in enumerate(checks):
            state, retry = self._check(check, now)
            if retry is not None:
                return Verdict(False, (*states, state), index, retry)
            states.append(state)
        for check in checks:
            self._record(rid, check, now, lease_s)
        return Verdict(True, tuple(states))

    def _check(self, check: Check, now: float) -> tuple[CheckState, float | None]:
        if isinstance(check, Window):
            window = self._windows.setdefault(check.key, _Window())
            horizon = now - check.window_s
            for rid in [r for r, (at, _) in window.entries.items() if at <= horizon]:
                del window.entries[rid]
            used = sum(amount for _, amount in window.entries.values())
            oldest = min((at for at, _ in window.entries.values()), default=None)
            reset = 0.0 if oldest is None else oldest + check.window_s - now
            if used + check.amount <= check.limit:
                return CheckState(check.limit, used + check.amount, reset), None
            need, freed, retry = used + check.amount - check.limit, 0, check.window_s
            for at, amount in sorted(window.entries.values()):
                freed += amount
                if freed >= need:
                    retry = at + check.window_s - now
                    break
            return CheckState(check.limit, used, reset), max(retry, 0.001)
        if isinstance(check, Concurrency):
            leases = self._leases.setdefault(check.key, {})
            for rid in [r for r, expiry in leases.items() if expiry <= now]:
                del leases[rid]
            if len(leases) + 1 <= check.limit:
                return CheckState(check.limit, len(leases) + 1, 0.0), None
            return CheckState(check.limit, len(leases), 0.0), 1.0
        budget = self._budgets.setdefault(check.key, _Budget())
        for rid in [r for r, (expiry, _) in budget.reserved.items() if expiry <= now]:
            del budget.reserved[rid]
        used = budget.spent + sum(amount for _, amount in budget.reserved.values())
        if not check.hard or used + check.amount <= check.cap:
            return CheckState(check.cap, used + check.amount, 0.0), None
        return CheckState(check.cap, used, 0.0), check.retry_after_s

    def _record(self, rid: str, check: Check, now: float, lease_s: float) -> None:
        if isinstance(check, Window):
            self._windows[check.key].entries[rid] = (now, check.amount)
        elif isinstance(check, Concurrency):
            self._leases[check.key][rid] = now + lease_s
        else:
            self._budgets[check.key].reserved[rid] = (now + lease_s, check.amount)

    async def settle(
        self, rid: str, checks: Sequence[Check], actual: Sequence[int]
    ) -> tuple[int, ...]:
        out: list[int] = []
        for check, amount in zip(checks, actual, strict=True):
            spent = 0
            if isinstance(check, Window):
                window = self._windows.get(check.key)
                if check.unit == "tokens" and window is not None and rid in window.entries:
                    window.entries[rid] = (window.entries[rid][0], amount)
            elif isinstance(check, Concurrency):
                self._leases.get(check.key, {}).pop(rid, None)
            else:
                budget = self._budgets.setdefault(check.key, _Budget())
                budget.reserved.pop(rid, None)
                budget.spent += amount
                spent = budget.spent
            out.append(spent)
        return tuple(out)
