"""The state-store protocol, table-driven over memory and the real Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from serve.config import StateConfig
from serve.state import StateStore, create_state_store


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[StateStore]:
    if request.param == "redis":
        config = StateConfig(
            backend="redis",
            url=request.getfixturevalue("redis_url"),
            key_prefix=f"rgtest:{uuid.uuid4().hex}:",
        )
    else:
        config = StateConfig(backend="memory")
    store = create_state_store(config)
    assert await store.ping()
    yield store
    await store.aclose()


async def test_get_set_delete(store: StateStore) -> None:
    assert await store.get("a") is None
    await store.set("a", b"1")
    assert await store.get("a") == b"1"
    await store.delete("a")
    assert await store.get("a") is None


async def test_set_if_absent(store: StateStore) -> None:
    assert await store.set_if_absent("lock", b"x", ttl_s=30)
    assert not await store.set_if_absent("lock", b"y", ttl_s=30)
    assert await store.get("lock") == b"x"


async def test_incr_is_atomic_under_concurrency(store: StateStore) -> None:
    results = await asyncio.gather(*(store.incr("counter", 2, ttl_s=60) for _ in range(50)))
    assert sorted(results) == list(range(2, 101, 2))
    assert await store.get("counter") == b"100"


async def test_memory_ttl_expires_on_its_clock() -> None:
    from serve.state.memory_store import MemoryStateStore

    now = [100.0]
    store = MemoryStateStore(clock=lambda: now[0])
    await store.set("short", b"v", ttl_s=5)
    assert await store.incr("n", 1, ttl_s=5) == 1
    now[0] += 4.9
    assert await store.get("short") == b"v" and await store.incr("n", 1, ttl_s=5) == 2
    now[0] += 0.2
    assert await store.get("short") is None
    assert await store.incr("n", 1, ttl_s=5) == 1  # expired, so a fresh window


async def test_redis_sets_ttl_once_per_key(redis_url: str) -> None:
    import redis.asyncio as aioredis

    from serve.state.redis_store import RedisStateStore

    prefix = f"rgtest:{uuid.uuid4().hex}:"
    store = RedisStateStore(redis_url, prefix=prefix)
    raw = aioredis.Redis.from_url(redis_url)
    await store.incr("n", 1, ttl_s=60)
    await raw.pexpire(prefix + "n", 120_000)
    await store.incr("n", 1, ttl_s=60)  # must not reset the window
    assert 60_000 < await raw.pttl(prefix + "n") <= 120_000
    await store.set("s", b"v", ttl_s=30)
    assert 0 < await raw.pttl(prefix + "s") <= 30_000
    await raw.aclose()
    await store.aclose()


def test_memory_refused_with_several_ingress_replicas() -> None:
    from serve.config import parse_platform_config
    from serve.errors import ConfigError

    with pytest.raises(ConfigError, match="single ingress replica"):
        parse_platform_config({"ingress": {"num_replicas": 3}})


# -- bounded logs (semantic cache replication) ------------------------------------------


async def test_log_reads_after_cursor_in_order(store: StateStore) -> None:
    assert await store.log_read("log") == []
    cursors = [await store.log_append("log", f"e{i}".encode(), max_len=10) for i in range(5)]
    everything = await store.log_read("log")
    assert [e.value for e in everything] == [b"e0", b"e1", b"e2", b"e3", b"e4"]
    assert [e.cursor for e in everything] == cursors
    assert [e.value for e in await store.log_read("log", after=cursors[2])] == [b"e3", b"e4"]
    assert await store.log_read("log", after=cursors[-1]) == []
    page = await store.log_read("log", after=cursors[0], limit=2)
    assert [e.value for e in page] == [b"e1", b"e2"]


async def test_log_keeps_only_the_newest(store: StateStore) -> None:
    cursors = [await store.log_append("bounded", str(i).encode(), max_len=3) for i in range(7)]
    assert [e.value for e in await store.log_read("bounded")] == [b"4", b"5", b"6"]
    # A reader whose cursor points at a dropped entry continues with what is left.
    assert [e.value for e in await store.log_read("bounded", after=cursors[1])] == [
        b"4",
        b"5",
        b"6",
    ]


async def test_memory_log_expires_on_its_clock() -> None:
    from serve.state.memory_store import MemoryStateStore

    now = [0.0]
    store = MemoryStateStore(clock=lambda: now[0])
    first = await store.log_append("l", b"a", max_len=5, ttl_s=10)
    now[0] = 8.0
    await store.log_append("l", b"b", max_len=5)  # no TTL: the log keeps its expiry
    now[0] = 10.5
    assert await store.log_read("l") == []
    await store.log_append("l", b"c", max_len=5, ttl_s=10)
    assert [e.value for e in await store.log_read("l", after=first)] == [b"c"]


async def test_redis_log_append_refreshes_ttl(redis_url: str) -> None:
    import redis.asyncio as aioredis

    from serve.state.redis_store import RedisStateStore

    prefix = f"rgtest:{uuid.uuid4().hex}:"
    store = RedisStateStore(redis_url, prefix=prefix)
    raw = aioredis.Redis.from_url(redis_url)
    await store.log_append("l", b"a", max_len=5, ttl_s=30)
    assert 0 < await raw.pttl(prefix + "l") <= 30_000
    await store.log_append("l", b"b", max_len=5, ttl_s=120)
    assert 30_000 < await raw.pttl(prefix + "l") <= 120_000
    await raw.aclose()
    await store.aclose()


async def test_redis_log_cursor_survives_the_log_being_recreated(redis_url: str) -> None:
    import redis.asyncio as aioredis

    from serve.state.redis_store import RedisStateStore

    prefix = f"rgtest:{uuid.uuid4().hex}:"
    store = RedisStateStore(redis_url, prefix=prefix)
    raw = aioredis.Redis.from_url(redis_url)
    old = await store.log_append("l", b"old", max_len=5, ttl_s=60)
    await raw.delete(prefix + "l")  # the log expired or was evicted
    await store.log_append("l", b"new", max_len=5, ttl_s=60)
    assert [e.value for e in await store.log_read("l", after=old)] == [b"new"]
    await raw.aclose()
    await store.aclose()
