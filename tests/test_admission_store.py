"""The admission store seam, table-driven over memory and the real Redis: every check of
a request passes and is recorded, or none is; settlement reconciles; leases expire."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from serve.admission.checks import NANO, Budget, Concurrency, Window
from serve.admission.memory_store import MemoryAdmissionStore
from serve.admission.redis_store import RedisAdmissionStore
from serve.admission.store import AdmissionStore

LEASE = 600.0


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[AdmissionStore]:
    if request.param == "memory":
        yield MemoryAdmissionStore()
        return
    client = aioredis.Redis.from_url(request.getfixturevalue("redis_url"))
    yield RedisAdmissionStore(client, prefix=f"rgtest:{uuid.uuid4().hex}:")
    await client.aclose()


def rid() -> str:
    return uuid.uuid4().hex


async def test_a_request_window_admits_exactly_its_limit(store: AdmissionStore) -> None:
    check = Window("w", 3, 1, "requests")
    verdicts = [await store.admit(rid(), [check], LEASE) for _ in range(5)]
    assert [v.admitted for v in verdicts] == [True, True, True, False, False]
    assert [v.states[0].remaining for v in verdicts[:3]] == [2, 1, 0]
    refused = verdicts[3]
    assert refused.failed == 0 and 0 < refused.retry_after_s <= 60
    assert refused.states[0].reset_s > 0


async def test_one_failing_check_records_none_of_the_others(store: AdmissionStore) -> None:
    team = Window("team", 10, 1, "requests")
    key = Window("key", 1, 1, "requests")
    assert (await store.admit(rid(), [team, key], LEASE)).admitted
    refused = await store.admit(rid(), [team, key], LEASE)
    assert not refused.admitted and refused.failed == 1
    # The team window counted only the admitted request: 9 left, not 8.
    alone = await store.admit(rid(), [team], LEASE)
    assert alone.states[0].remaining == 8


async def test_token_reservations_are_reconciled_with_real_usage(store: AdmissionStore) -> None:
    first = rid()
    big = Window("tpm", 100, 80, "tokens")
    assert (await store.admit(first, [big], LEASE)).admitted
    assert not (await store.admit(rid(), [Window("tpm", 100, 30, "tokens")], LEASE)).admitted
    await store.settle(first, [big], [10])  # the request really used 10
    after = await store.admit(rid(), [Window("tpm", 100, 30, "tokens")], LEASE)
    assert after.admitted and after.states[0].used == 40


async def test_concurrency_leases_are_released_on_settle(store: AdmissionStore) -> None:
    check = Concurrency("conc", 2)
    a, b = rid(), rid()
    assert (await store.admit(a, [check], LEASE)).admitted
    assert (await store.admit(b, [check], LEASE)).admitted
    assert not (await store.admit(rid(), [check], LEASE)).admitted
    await store.settle(a, [check], [0])
    assert (await store.admit(rid(), [check], LEASE)).admitted


async def test_expired_leases_free_their_reservations(store: AdmissionStore) -> None:
    # Lease 0: the replica "died" the moment it admitted; the next admission drops it.
    conc, budget = Concurrency("c0", 1), Budget("b0", 100, 100, True, 5.0)
    assert (await store.admit(rid(), [conc, budget], 0)).admitted
    assert (await store.admit(rid(), [conc, budget], LEASE)).admitted


async def test_budget_reserves_the_worst_case_and_settles_the_real_cost(
    store: AdmissionStore,
) -> None:
    cap = 1 * NANO
    worst = Budget("month", cap, 600_000_000, True, 3600.0)
    first = rid()
    assert (await store.admit(first, [worst], LEASE)).admitted
    refused = await store.admit(rid(), [worst], LEASE)  # 0.6 + 0.6 > 1.0
    assert not refused.admitted and refused.retry_after_s == pytest.approx(3600, abs=1)
    totals = await store.settle(first, [worst], [100_000_000])
    assert totals == (100_000_000,)
    assert (await store.admit(rid(), [worst], LEASE)).admitted  # 0.1 + 0.6 <= 1.0


async def test_a_soft_budget_admits_past_its_cap(store: AdmissionStore) -> None:
    soft = Budget("soft", 100, 80, False, 60.0)
    assert (await store.admit(rid(), [soft], LEASE)).admitted
    verdict = await store.admit(rid(), [soft], LEASE)
    assert verdict.admitted and verdict.states[0].used == 160


async def test_settle_leaves_request_windows_as_they_are(store: AdmissionStore) -> None:
    check = Window("rq", 2, 1, "requests")
    first = rid()
    await store.admit(first, [check], LEASE)
    await store.settle(first, [check], [0])
    verdict = await store.admit(rid(), [check], LEASE)
    assert verdict.admitted and verdict.states[0].remaining == 0


async def test_memory_windows_slide_on_their_clock() -> None:
    now = [1000.0]
    store = MemoryAdmissionStore(clock=lambda: now[0])
    check = Window("slide", 2, 1, "requests")
    await store.admit(rid(), [check], LEASE)
    now[0] += 30
    await store.admit(rid(), [check], LEASE)
    refused = await store.admit(rid(), [check], LEASE)
    assert not refused.admitted and refused.retry_after_s == pytest.approx(30)
    now[0] += 30.001  # the first use left the window; the second has not
    assert (await store.admit(rid(), [check], LEASE)).admitted
    assert not (await store.admit(rid(), [check], LEASE)).admitted


async def test_replicas_sharing_redis_admit_exactly_the_limit_under_a_burst(
    redis_url: str,
) -> None:
    prefix = f"rgtest:{uuid.uuid4().hex}:"
    clients = [aioredis.Redis.from_url(redis_url) for _ in range(2)]
    replicas = [RedisAdmissionStore(c, prefix=prefix) for c in clients]
    checks = [Window("burst", 7, 1, "requests"), Budget("cap", 5 * NANO, NANO, True, 60.0)]
    try:
        verdicts = await asyncio.gather(
            *(replicas[i % 2].admit(rid(), checks, LEASE) for i in range(40))
        )
    finally:
        for client in clients:
            await client.aclose()
    assert sum(v.admitted for v in verdicts) == 5  # the budget (5 x 1 USD) binds first
