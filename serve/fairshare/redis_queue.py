"""The fair queue across ingress replicas: waiters and in-flight slots live in Redis.

Decisions are atomic Lua scripts (`serve.fairshare.redis_scripts`) on Redis's clock.
Slots are leases that this replica renews while it holds them, so a replica that dies
gives its slots back within ``lease_s``. A waiting replica is woken by a pub/sub message
the moment a release grants it a slot; a slow poll (``poll_s``) is the safety net for a
lost message or a lease that expired without a release.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import anyio
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from serve.fairshare import redis_scripts
from serve.fairshare.queue import QueueStats
from serve.fairshare.refusal import HoldTimes, queue_timeout, retry_after_s
from serve.fairshare.slot import Slot

__all__ = ["RedisFairQueue"]

log = logging.getLogger("raygate.fairshare")

_WAITING, _GRANTED, _GONE = 0, 1, 2


class _Held:
    __slots__ = ("capacity", "lease_ms", "slot")

    def __init__(self, slot: Slot, capacity: int, lease_ms: int) -> None:
        self.slot, self.capacity, self.lease_ms = slot, capacity, lease_ms


class RedisFairQueue:
    def __init__(
        self,
        redis: aioredis.Redis,
        prefix: str = "",
        *,
        poll_s: float = 1.0,
        deadline_grace_s: float = 5.0,
    ) -> None:
        # deadline_grace_s: a waiter's entry outlives its own max wait by this much before
        # any replica drops it (the waiter's replica died without leaving the queue).
        self._redis = redis
        self._grace_ms = int(deadline_grace_s * 1000)
        self._prefix = prefix
        self._channel = prefix + "fq:grants"
        self._poll_s = poll_s
        self._acquire = redis.register_script(redis_scripts.ACQUIRE)
        self._release = redis.register_script(redis_scripts.RELEASE)
        self._poll = redis.register_script(redis_scripts.POLL)
        self._leave = redis.register_script(redis_scripts.LEAVE)
        self._renew = redis.register_script(redis_scripts.RENEW)
        self._stats = redis.register_script(redis_scripts.STATS)
        self._waiters: dict[str, asyncio.Event] = {}
        self._held: dict[str, _Held] = {}
        self._holds = HoldTimes()
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._renewer: asyncio.Task[None] | None = None

    def _keys(self, model: str) -> list[str]:
        return [f"{self._prefix}fq:{{{model}}}:", self._channel]

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
        await self._listening()
        slot_id = uuid.uuid4().hex
        lease_ms = int(lease_s * 1000)
        wait_ms = int(max_wait_s * 1000) + self._grace_ms
        keys = self._keys(model)
        granted = self._waiters[slot_id] = asyncio.Event()
        try:
            args: list[str | int] = [
                slot_id,
                team,
                repr(float(weight)),
                capacity,
                lease_ms,
                wait_ms,
            ]
            now, _, _ = await self._acquire(keys=keys, args=args)
            if now:
                return self._hold(slot_id, model, team, 0.0, capacity, lease_ms)
            started = time.monotonic()
            if on_queued is not None:
                on_queued()
            try:
                status = await self._wait(
                    granted, keys, slot_id, team, capacity, lease_ms, started + max_wait_s
                )
            except BaseException:
                # Cancelled (client gone) or Redis failed: leave the queue, or pass on a
                # slot granted meanwhile; never leave a ghost waiter behind.
                with anyio.CancelScope(shield=True), contextlib.suppress(RedisError):
                    status, _, _ = await self._leave(keys=keys, args=[slot_id, team])
                    if status == _GRANTED:
                        await self._release(keys=keys, args=[slot_id, capacity, lease_ms])
                raise
            waited = time.monotonic() - started
            if status == _GRANTED:
                return self._hold(slot_id, model, team, waited, capacity, lease_ms)
            status, _, waiting = await self._leave(keys=keys, args=[slot_id, team])
            if status == _GRANTED:  # granted in the instant its time ran out
                return self._hold(slot_id, model, team, waited, capacity, lease_ms)
            retry = retry_after_s(self._holds.mean(model), int(waiting), capacity)
            raise queue_timeout(model, team, waited, retry)
        finally:
            self._waiters.pop(slot_id, None)

    async def _wait(
        self,
        granted: asyncio.Event,
        keys: list[str],
        slot_id: str,
        team: str,
        capacity: int,
        lease_ms: int,
        deadline: float,
    ) -> int:
        """Until granted (pub/sub wake-up, or the slow poll finds it) or the deadline."""
        while (remaining := deadline - time.monotonic()) > 0:
            with anyio.move_on_after(min(self._poll_s, remaining)):
                await granted.wait()
            if granted.is_set():
                return _GRANTED
            status = int(await self._poll(keys=keys, args=[slot_id, team, capacity, lease_ms]))
            if status != _WAITING:
                return status
        return _WAITING

    async def release(self, slot: Slot) -> None:
        await slot.release()

    async def stats(self, model: str) -> QueueStats:
        in_flight, waiting = await self._stats(keys=self._keys(model), args=[])
        return QueueStats(int(in_flight), int(waiting))

    async def aclose(self) -> None:
        for slot in [held.slot for held in self._held.values()]:
            await slot.release()
        for task in (self._listener, self._renewer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, RedisError):
                    await task
        self._listener = self._renewer = None

    # -- holding ------------------------------------------------------------------------

    def _hold(
        self, slot_id: str, model: str, team: str, waited_s: float, capacity: int, lease_ms: int
    ) -> Slot:
        keys = self._keys(model)

        async def free(slot: Slot) -> None:
            self._held.pop(slot.id, None)
            self._holds.observe(model, slot.held_s)
            try:
                await self._release(keys=keys, args=[slot.id, capacity, lease_ms])
            except RedisError as exc:  # the lease expires on its own
                log.warning("fair share: could not release a slot on %s: %s", model, exc)

        slot = Slot(slot_id, model, team, waited_s, free)
        self._held[slot_id] = _Held(slot, capacity, lease_ms)
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._renew_held(), name="fairshare-renew")
        return slot

    async def _renew_held(self) -> None:
        """Renew every held slot's lease at a third of its length; ends when none is held."""
        while self._held:
            await asyncio.sleep(min(h.lease_ms for h in self._held.values()) / 3000)
            groups: dict[tuple[str, int], list[str]] = {}
            for held in self._held.values():
                groups.setdefault((held.slot.model, held.lease_ms), []).append(held.slot.id)
            for (model, lease_ms), ids in groups.items():
                try:
                    lost = int(await self._renew(keys=self._keys(model), args=[lease_ms, *ids]))
                except RedisError as exc:
                    log.warning("fair share: could not renew leases on %s: %s", model, exc)
                    continue
                if lost:
                    log.warning("fair share: %d lease(s) on %s expired while held", lost, model)

    # -- wake-ups -----------------------------------------------------------------------

    async def _listening(self) -> None:
        if self._listener is None or self._listener.done():
            self._subscribed = asyncio.Event()
            self._listener = asyncio.create_task(self._listen(), name="fairshare-grants")
        if not self._subscribed.is_set():
            # Not subscribed in time (Redis slow): the poll still finds our grant.
            with anyio.move_on_after(self._poll_s):
                await self._subscribed.wait()

    async def _listen(self) -> None:
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                while True:
                    message = await pubsub.get_message(timeout=self._poll_s)
                    if message is not None:
                        self._on_message(message)
            except RedisError as exc:
                self._subscribed.clear()
                log.warning("fair share: grants subscription lost (%s); polling meanwhile", exc)
                await asyncio.sleep(self._poll_s)
            finally:
                with anyio.CancelScope(shield=True), contextlib.suppress(RedisError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _on_message(self, message: dict[str, Any]) -> None:
        if message["type"] == "subscribe":
            self._subscribed.set()
        elif message["type"] == "message":
            data = message["data"]
            event = self._waiters.get(data.decode() if isinstance(data, bytes) else str(data))
            if event is not None:
                event.set()
