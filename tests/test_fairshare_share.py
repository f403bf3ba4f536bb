"""The gateway hook: slots only on shared models, held for a call or for a whole stream
(released when it ends, breaks or is closed), fail open when the shared state is down."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import nullcontext
from typing import Any

import pytest
import redis.asyncio as aioredis

from serve.errors import RateLimited
from serve.fairshare import (
    QUEUE_TIMEOUT,
    FairShare,
    FairSharePolicy,
    Held,
    MemoryFairQueue,
    SharedModel,
    build_fair_share,
)
from serve.fairshare.redis_queue import RedisFairQueue
from serve.state.memory_store import MemoryStateStore
from serve.state.redis_store import RedisStateStore

SHARED = "smol"


def fair(capacity: int = 1, **policy: Any) -> FairShare:
    models = {SHARED: SharedModel(FairSharePolicy.model_validate(policy), capacity)}
    return FairShare(MemoryFairQueue(), models)


async def in_flight(share: FairShare) -> int:
    return (await share.queue.stats(SHARED)).in_flight


async def numbers(n: int, fail_at: int | None = None) -> AsyncIterator[int]:
    for i in range(n):
        if i == fail_at:
            raise RuntimeError("backend broke")
        yield i


async def test_models_that_are_not_shared_get_no_slot() -> None:
    share = fair()
    assert share.governs(SHARED) and not share.governs("other")
    assert await share.acquire("other", "a") is None
    async with share.slot("other", "a") as slot:
        assert slot is None


async def test_a_disabled_policy_governsnullcontext() -> None:
    share = fair(enabled=False)
    assert not share.governs(SHARED)
    assert await share.acquire(SHARED, "a") is None


@pytest.mark.parametrize("fails", [False, True])
async def test_a_call_holds_its_slot_until_it_returns(fails: bool) -> None:
    share = fair()
    with pytest.raises(RuntimeError) if fails else nullcontext():
        async with share.slot(SHARED, "a") as slot:
            assert slot is not None and await in_flight(share) == 1
            if fails:
                raise RuntimeError("backend broke")
    assert await in_flight(share) == 0


async def test_a_full_model_answers_429_after_max_wait() -> None:
    share = fair(capacity=1, max_wait_s=0.1)
    async with share.slot(SHARED, "heavy"):
        with pytest.raises(RateLimited) as refused:
            await share.acquire(SHARED, "light")
    assert refused.value.code == QUEUE_TIMEOUT and "retry-after" in refused.value.headers


@pytest.mark.parametrize(
    ("source", "consume", "error"),
    [
        (lambda: numbers(3), 10, None),  # runs to its end
        (lambda: numbers(5), 2, None),  # the client leaves after two chunks (aclose)
        (lambda: numbers(5), 0, None),  # closed before it was ever started
        (lambda: numbers(5, fail_at=1), 10, RuntimeError),  # the backend breaks mid-stream
    ],
)
async def test_a_stream_holds_its_slot_until_it_ends(
    source: Any, consume: int, error: type[Exception] | None
) -> None:
    share = fair()
    slot = await share.acquire(SHARED, "a")
    held: Held[int] = Held(slot, source())
    assert await in_flight(share) == 1
    got: list[int] = []
    with pytest.raises(error) if error else nullcontext():
        async for item in held:
            got.append(item)
            if len(got) >= consume:
                break
    await held.aclose()
    await held.aclose()  # twice is harmless
    assert await in_flight(share) == 0


async def test_the_shared_state_down_admits_without_a_slot() -> None:
    client = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    queue = RedisFairQueue(client, f"rgtest:{uuid.uuid4().hex}:", poll_s=0.05)
    share = FairShare(queue, {SHARED: SharedModel(FairSharePolicy(), 1)})
    assert await share.acquire(SHARED, "a") is None
    await share.aclose()
    await client.aclose()


async def test_the_factory_follows_the_state_store(redis_url: str) -> None:
    policies = {
        SHARED: (FairSharePolicy(weights={"gold": 3}), 4),
        "off": (FairSharePolicy(enabled=False), 2),
    }
    local = build_fair_share(policies, MemoryStateStore())
    assert isinstance(local.queue, MemoryFairQueue)
    assert local.governs(SHARED) and not local.governs("off")
    state = RedisStateStore(redis_url, prefix=f"rgtest:{uuid.uuid4().hex}:")
    shared = build_fair_share(policies, state)
    assert isinstance(shared.queue, RedisFairQueue)
    async with shared.slot(SHARED, "gold") as slot:
        assert slot is not None
        assert (await shared.queue.stats(SHARED)).in_flight == 1
    await shared.aclose()
    await state.aclose()
