"""The fair queue seam, table-driven over memory and the real Redis: grants at once when
free, weighted fair shares under contention (counted admissions, deterministic), work
conservation without banked credit, bounded wait (429), cancellation, hand-off."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import anyio
import pytest
import redis.asyncio as aioredis

from serve.errors import RateLimited
from serve.fairshare import QUEUE_TIMEOUT, FairQueue, MemoryFairQueue
from serve.fairshare.redis_queue import RedisFairQueue

WAIT = 30.0
BOUND = 10.0  # bounded waits on events in these tests


@pytest.fixture(params=["memory", "redis"])
async def queue(request: pytest.FixtureRequest) -> AsyncIterator[FairQueue]:
    if request.param == "memory":
        memory = MemoryFairQueue()
        yield memory
        await memory.aclose()
        return
    client = aioredis.Redis.from_url(request.getfixturevalue("redis_url"))
    # A slow poll: every wake-up in these tests must come from the pub/sub grant message.
    shared = RedisFairQueue(client, prefix=f"rgtest:{uuid.uuid4().hex}:", poll_s=60)
    yield shared
    await shared.aclose()
    await client.aclose()


def model() -> str:
    return f"m-{uuid.uuid4().hex[:8]}"


class Queued:
    """Counts waiters that had to queue; an event fires when ``expected`` have."""

    def __init__(self, expected: int) -> None:
        self.count = 0
        self.expected = expected
        self.all = asyncio.Event()

    def __call__(self) -> None:
        self.count += 1
        if self.count >= self.expected:
            self.all.set()

    async def wait(self) -> None:
        with anyio.fail_after(BOUND):
            await self.all.wait()


async def grant_order(
    queue: FairQueue, name: str, waiters: list[tuple[str, float, int]]
) -> list[str]:
    """Capacity 1 held by a holder; queue every waiter; release; the teams in grant order."""
    holder = await queue.acquire(name, "holder", 1.0, 1, WAIT)
    queued = Queued(sum(n for _, _, n in waiters))
    order: list[str] = []

    async def one(team: str, weight: float) -> None:
        slot = await queue.acquire(name, team, weight, 1, WAIT, on_queued=queued)
        order.append(team)
        await slot.release()

    with anyio.fail_after(BOUND * 3):
        async with anyio.create_task_group() as tasks:
            for team, weight, count in waiters:
                for _ in range(count):
                    tasks.start_soon(one, team, weight)
            await queued.wait()
            await holder.release()
    return order


async def test_free_capacity_is_granted_at_once(queue: FairQueue) -> None:
    name = model()
    queued = Queued(1)
    slots = [await queue.acquire(name, "a", 1.0, 2, WAIT, on_queued=queued) for _ in range(2)]
    assert queued.count == 0
    assert (await queue.stats(name)).in_flight == 2
    for slot in slots:
        await slot.release()
    assert (await queue.stats(name)).in_flight == 0


@pytest.mark.parametrize(
    ("waiters", "first", "expected", "tolerance"),
    [
        # weights 3:1, 40 waiting each: of the first 40 grants, 30 and 10
        ([("heavy", 1.0, 40), ("gold", 3.0, 40)], 40, {"gold": 30, "heavy": 10}, 1),
        # weights 1:1: an even split, whoever queued more
        ([("a", 1.0, 30), ("b", 1.0, 10)], 20, {"a": 10, "b": 10}, 1),
        # three teams 2:1:1
        ([("x", 2.0, 20), ("y", 1.0, 20), ("z", 1.0, 20)], 20, {"x": 10, "y": 5, "z": 5}, 1),
    ],
)
async def test_contended_grants_follow_the_weights(
    queue: FairQueue,
    waiters: list[tuple[str, float, int]],
    first: int,
    expected: dict[str, int],
    tolerance: int,
) -> None:
    order = await grant_order(queue, model(), waiters)
    assert len(order) == sum(n for _, _, n in waiters)
    counts = Counter(order[:first])
    for team, share in expected.items():
        assert abs(counts[team] - share) <= tolerance, (team, counts)


async def test_an_idle_teams_share_goes_to_the_team_that_waits(queue: FairQueue) -> None:
    # "gold" (weight 3) sends nothing: "a" (weight 1) gets the whole capacity.
    name = model()
    queued = Queued(3)
    slots = [await queue.acquire(name, "a", 1.0, 3, WAIT, on_queued=queued) for _ in range(3)]
    assert queued.count == 0 and (await queue.stats(name)).in_flight == 3
    order: list[str] = []

    async def more() -> None:
        slot = await queue.acquire(name, "a", 1.0, 3, WAIT, on_queued=queued)
        order.append("a")
        await slot.release()

    async with anyio.create_task_group() as tasks:
        for _ in range(3):
            tasks.start_soon(more)
        await queued.wait()
        assert await queue.stats(name) == type(await queue.stats(name))(3, 3)
        for slot in slots:
            await slot.release()
    assert order == ["a"] * 3
    assert (await queue.stats(name)).in_flight == 0


async def test_an_idle_team_banks_no_credit(queue: FairQueue) -> None:
    # "a" runs alone for 20 requests; then "b" arrives. With equal weights the next grants
    # alternate: "b" does not get a burst of 10 for the time it was idle.
    name = model()
    for _ in range(20):
        await (await queue.acquire(name, "a", 1.0, 1, WAIT)).release()
    order = await grant_order(queue, name, [("a", 1.0, 10), ("b", 1.0, 10)])
    counts = Counter(order[:10])
    assert abs(counts["a"] - 5) <= 1 and abs(counts["b"] - 5) <= 1, counts


async def test_a_waiter_past_max_wait_gets_429_and_leaves(queue: FairQueue) -> None:
    name = model()
    holder = await queue.acquire(name, "a", 1.0, 1, WAIT)
    with pytest.raises(RateLimited) as refused:
        await queue.acquire(name, "b", 1.0, 1, 0.2)
    error = refused.value
    assert error.status == 429 and error.code == QUEUE_TIMEOUT
    assert int(error.headers["retry-after"]) >= 1
    assert (await queue.stats(name)).waiting == 0
    await holder.release()
    assert (await queue.stats(name)).in_flight == 0  # nothing handed to the leaver


async def test_a_cancelled_waiter_leaves_and_gets_nothing(queue: FairQueue) -> None:
    name = model()
    holder = await queue.acquire(name, "a", 1.0, 1, WAIT)
    queued = Queued(1)
    task = asyncio.create_task(queue.acquire(name, "b", 1.0, 1, WAIT, on_queued=queued))
    await queued.wait()
    assert (await queue.stats(name)).waiting == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await queue.stats(name)).waiting == 0
    await holder.release()
    assert (await queue.stats(name)).in_flight == 0
    again = Queued(1)
    await (await queue.acquire(name, "c", 1.0, 1, WAIT, on_queued=again)).release()
    assert again.count == 0


async def test_a_released_slot_is_handed_on_not_barged(queue: FairQueue) -> None:
    name = model()
    holder = await queue.acquire(name, "a", 1.0, 1, WAIT)
    first, late = Queued(1), Queued(1)
    waiter = asyncio.create_task(queue.acquire(name, "b", 1.0, 1, WAIT, on_queued=first))
    await first.wait()
    await holder.release()
    # The slot went to the waiter inside the release: a newcomer has to queue.
    newcomer = asyncio.create_task(queue.acquire(name, "c", 1.0, 1, WAIT, on_queued=late))
    await late.wait()
    with anyio.fail_after(BOUND):
        granted = await waiter
    assert granted.team == "b" and granted.waited_s > 0
    await granted.release()
    with anyio.fail_after(BOUND):
        await (await newcomer).release()
    assert await queue.stats(name) == type(await queue.stats(name))(0, 0)


async def test_release_is_idempotent(queue: FairQueue) -> None:
    name = model()
    first = await queue.acquire(name, "a", 1.0, 1, WAIT)
    await queue.release(first)
    second = await queue.acquire(name, "a", 1.0, 1, WAIT)
    await queue.release(first)  # must not free the second holder's slot
    await first.release()
    assert (await queue.stats(name)).in_flight == 1
    await second.release()
    assert (await queue.stats(name)).in_flight == 0
