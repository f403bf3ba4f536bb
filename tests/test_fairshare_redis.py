"""The Redis fair queue across "replicas" (separate FairQueue objects on separate Redis
clients): one capacity never exceeded, weights held across replicas, pub/sub wake-ups,
leases renewed while held and returned when a replica dies."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import pytest
import redis.asyncio as aioredis

from serve.errors import RateLimited
from serve.fairshare.redis_queue import RedisFairQueue

WAIT = 30.0
BOUND = 10.0

Replicas = Callable[..., Awaitable[RedisFairQueue]]


@pytest.fixture
async def replicas(redis_url: str) -> AsyncIterator[Replicas]:
    """Makes replicas of one platform: same key prefix, each with its own Redis client."""
    prefix = f"rgtest:{uuid.uuid4().hex}:"
    made: list[tuple[RedisFairQueue, aioredis.Redis]] = []

    async def make(poll_s: float = 60.0, deadline_grace_s: float = 5.0) -> RedisFairQueue:
        client = aioredis.Redis.from_url(redis_url)
        queue = RedisFairQueue(client, prefix, poll_s=poll_s, deadline_grace_s=deadline_grace_s)
        made.append((queue, client))
        return queue

    yield make
    for queue, client in made:
        await queue.aclose()
        await client.aclose()


def model() -> str:
    return f"m-{uuid.uuid4().hex[:8]}"


class Queued:
    def __init__(self, expected: int) -> None:
        self.count, self.expected, self.all = 0, expected, asyncio.Event()

    def __call__(self) -> None:
        self.count += 1
        if self.count >= self.expected:
            self.all.set()

    async def wait(self) -> None:
        with anyio.fail_after(BOUND):
            await self.all.wait()


async def test_two_replicas_never_exceed_one_capacity(replicas: Replicas) -> None:
    one, two = await replicas(), await replicas()
    name, capacity = model(), 3
    holding, peak, done = 0, 0, 0

    async def worker(queue: RedisFairQueue, team: str) -> None:
        nonlocal holding, peak, done
        for _ in range(4):
            async with await queue.acquire(name, team, 1.0, capacity, WAIT):
                holding += 1
                peak = max(peak, holding)
                await anyio.sleep(0.005)  # simulated service time
                holding -= 1
        done += 1

    with anyio.fail_after(BOUND * 3):
        async with anyio.create_task_group() as tasks:
            for i in range(12):
                tasks.start_soon(worker, one if i % 2 else two, f"t{i % 3}")
    assert done == 12
    assert peak == capacity  # used fully, never exceeded
    stats = await one.stats(name)
    assert (stats.in_flight, stats.waiting) == (0, 0)


async def test_weights_hold_across_replicas(replicas: Replicas) -> None:
    # "gold" (weight 3) queues on one replica, "heavy" (weight 1) on the other.
    one, two = await replicas(), await replicas()
    name = model()
    holder = await one.acquire(name, "holder", 1.0, 1, WAIT)
    queued = Queued(80)
    order: list[str] = []

    async def waiter(queue: RedisFairQueue, team: str, weight: float) -> None:
        slot = await queue.acquire(name, team, weight, 1, WAIT, on_queued=queued)
        order.append(team)
        await slot.release()

    with anyio.fail_after(BOUND * 3):
        async with anyio.create_task_group() as tasks:
            for _ in range(40):
                tasks.start_soon(waiter, one, "gold", 3.0)
                tasks.start_soon(waiter, two, "heavy", 1.0)
            await queued.wait()
            await holder.release()
    counts = Counter(order[:40])
    assert abs(counts["gold"] - 30) <= 1 and abs(counts["heavy"] - 10) <= 1, counts


async def test_a_release_on_one_replica_wakes_a_waiter_on_another(replicas: Replicas) -> None:
    # Both poll once a minute: only the pub/sub grant message can wake the waiter in time.
    one, two = await replicas(poll_s=60), await replicas(poll_s=60)
    name = model()
    holder = await one.acquire(name, "a", 1.0, 1, WAIT)
    queued = Queued(1)
    waiting = asyncio.create_task(two.acquire(name, "b", 1.0, 1, WAIT, on_queued=queued))
    await queued.wait()
    await holder.release()
    with anyio.fail_after(5):
        slot = await waiting
    assert slot.team == "b"
    await slot.release()


async def test_a_dead_replicas_slot_returns_after_its_lease(
    replicas: Replicas, redis_url: str
) -> None:
    survivor = await replicas(poll_s=0.05)
    name = model()
    # A replica took the only slot with a 2 s lease and died (never renews, never
    # releases): write its lease as the layout in serve/fairshare/redis_scripts.py says.
    # (2 s, not less: the e2e session's Ray shares the two cores, and a lease that lapsed
    # before the request arrived would leave nothing to wait for.)
    raw = aioredis.Redis.from_url(redis_url)
    seconds, micros = await raw.time()
    expiry = seconds * 1000 + micros // 1000 + 2000
    await raw.zadd(f"{survivor._prefix}fq:{{{name}}}:leases", {"dead-replica-slot": expiry})
    await raw.aclose()
    queued = Queued(1)
    with anyio.fail_after(10):
        slot = await survivor.acquire(name, "a", 1.0, 1, WAIT, on_queued=queued)
    assert queued.count == 1 and slot.waited_s > 0  # it queued until the lease lapsed
    await slot.release()
    assert (await survivor.stats(name)).in_flight == 0


async def test_a_held_slot_outlives_its_lease_while_renewed(replicas: Replicas) -> None:
    holder_replica, other = await replicas(), await replicas()
    name = model()
    slot = await holder_replica.acquire(name, "a", 1.0, 1, WAIT, lease_s=0.3)
    await anyio.sleep(1.0)  # held for three lease lengths: the renewals keep it
    assert (await other.stats(name)).in_flight == 1
    await slot.release()
    assert (await other.stats(name)).in_flight == 0


async def test_a_dead_replicas_waiter_is_dropped_at_its_deadline(replicas: Replicas) -> None:
    # A replica queued a waiter and died before it could leave the queue: the entry is
    # dropped at its deadline and never takes the slot freed later.
    dead, alive = await replicas(deadline_grace_s=0), await replicas()
    name = model()
    holder = await alive.acquire(name, "a", 1.0, 1, WAIT)
    queued = Queued(1)
    ghost = asyncio.create_task(dead.acquire(name, "b", 1.0, 1, 0.1, on_queued=queued))
    await queued.wait()
    dead._leave = _died  # type: ignore[assignment]  # dies before leaving
    with pytest.raises(RateLimited):
        await ghost
    assert (await alive.stats(name)).waiting == 0
    await holder.release()
    assert (await alive.stats(name)).in_flight == 0


async def _died(*args: object, **kwargs: object) -> list[int]:
    """The dead replica's LEAVE script call: it never reaches Redis."""
    return [2, 0, 0]
