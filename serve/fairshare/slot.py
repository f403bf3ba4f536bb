"""A granted place on a shared model; released exactly once, even when cancelled."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from types import TracebackType

import anyio

__all__ = ["Slot"]


class Slot:
    """Held from the grant until `release` (idempotent; shielded from cancellation, so a
    client that disconnects cannot interrupt handing the slot on to the next waiter)."""

    __slots__ = ("_free", "granted_at", "id", "model", "released", "team", "waited_s")

    def __init__(
        self,
        id: str,
        model: str,
        team: str,
        waited_s: float,
        free: Callable[[Slot], Awaitable[None]],
    ) -> None:
        self.id = id
        self.model = model
        self.team = team
        self.waited_s = waited_s  # 0 when granted at once
        self.granted_at = time.monotonic()
        self.released = False
        self._free = free

    @property
    def held_s(self) -> float:
        return time.monotonic() - self.granted_at

    async def release(self) -> None:
        if self.released:
            return
        self.released = True
        with anyio.CancelScope(shield=True):
            await self._free(self)

    async def __aenter__(self) -> Slot:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.release()

    def __repr__(self) -> str:
        state = "released" if self.released else "held"
        return f"Slot({self.model!r}, team={self.team!r}, {state})"
