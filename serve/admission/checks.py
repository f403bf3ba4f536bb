"""What one admission asks of the shared state, and what it answers.

An admission is a list of checks evaluated and recorded in one atomic step: either every
check passes and every one is recorded under the request's id, or none is recorded.
Money is in integer nano-USD (1e-9) so sums are exact in Redis and Lua.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["NANO", "Budget", "Check", "CheckState", "Concurrency", "Verdict", "Window"]

NANO = 1_000_000_000  # nano-USD per USD


@dataclass(frozen=True, slots=True)
class Window:
    """At most ``limit`` units (requests or tokens) in any sliding ``window_s``."""

    key: str
    limit: int
    amount: int
    unit: Literal["requests", "tokens"]
    window_s: float = 60.0


@dataclass(frozen=True, slots=True)
class Concurrency:
    """At most ``limit`` requests in flight (each holds a lease until settled)."""

    key: str
    limit: int


@dataclass(frozen=True, slots=True)
class Budget:
    """Spent plus reserved may not pass ``cap`` (hard); ``key`` names the period."""

    key: str
    cap: int  # nano-USD
    amount: int  # the request's worst-case cost, nano-USD
    hard: bool
    retry_after_s: float  # until the period ends (what a refused caller must wait)


Check = Window | Concurrency | Budget


@dataclass(frozen=True, slots=True)
class CheckState:
    """A check's standing after the admission (for the x-ratelimit-* headers)."""

    limit: int
    used: int  # including this request when admitted
    reset_s: float  # until the oldest recorded use leaves the window (0: nothing recorded)

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


@dataclass(frozen=True, slots=True)
class Verdict:
    admitted: bool
    states: tuple[CheckState, ...]
    failed: int | None = None  # index of the first check that refused
    retry_after_s: float = 0.0
