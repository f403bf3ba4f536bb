"""The gateway's hook: a fair-share slot around each backend call to a shared model.

``async with fair.slot(model, team):`` around a call; for a stream, ``acquire`` before
opening it and wrap the chunks in `Held`, which releases the slot when the stream ends,
breaks, or is closed by a client that went away. Models that are not shared get no slot
(``None``) and no cost. If the shared state fails (Redis down), requests go through
without a slot (fail open: the model's own queue still bounds them) and it is logged.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

from redis.exceptions import RedisError

from serve.fairshare.policy import FairSharePolicy
from serve.fairshare.queue import FairQueue
from serve.fairshare.slot import Slot
from serve.streams import aclose_quietly

__all__ = ["FairShare", "Held", "SharedModel"]

log = logging.getLogger("raygate.fairshare")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SharedModel:
    policy: FairSharePolicy
    capacity: int  # resolved: the policy's, or replicas x max_ongoing_requests


class FairShare:
    def __init__(self, queue: FairQueue, models: Mapping[str, SharedModel]) -> None:
        self.queue = queue
        self._models = {name: m for name, m in models.items() if m.policy.enabled}

    def governs(self, model: str) -> bool:
        return model in self._models

    async def acquire(self, model: str, team: str) -> Slot | None:
        """A slot on a shared model (waiting for the team's fair share if it is full), or
        None for a model that is not shared. Raises `RateLimited` when the wait runs out."""
        shared = self._models.get(model)
        if shared is None:
            return None
        policy = shared.policy
        try:
            return await self.queue.acquire(
                model,
                team,
                policy.weight(team),
                shared.capacity,
                policy.max_wait_s,
                lease_s=policy.lease_s,
            )
        except (RedisError, OSError) as exc:
            log.warning("fair share on %s unavailable, admitting without a slot: %s", model, exc)
            return None

    @asynccontextmanager
    async def slot(self, model: str, team: str) -> AsyncIterator[Slot | None]:
        slot = await self.acquire(model, team)
        try:
            yield slot
        finally:
            if slot is not None:
                await slot.release()

    async def aclose(self) -> None:
        await self.queue.aclose()


class Held(Generic[T]):
    """A stream that holds a slot until it ends: exhausted, failed, or closed (``aclose``
    also releases a slot whose stream was never started)."""

    def __init__(self, slot: Slot | None, chunks: AsyncIterator[T]) -> None:
        self._slot = slot
        self._chunks = chunks

    def __aiter__(self) -> Held[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await anext(self._chunks)
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        try:
            await aclose_quietly(self._chunks)
        finally:
            if self._slot is not None:
                await self._slot.release()
