"""The audit store on SQLite (a temp file) and on the real PostgreSQL: same behaviour."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from serve.audit import AuditPolicy, AuditRow, AuditStore, PromptCipher, TeamAuditPolicy
from serve.errors import InvalidRequest
from serve.record import RequestRecord

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def record(n: int, **fields: Any) -> RequestRecord:
    values: dict[str, Any] = {
        "request_id": f"req-{n:06d}",
        "started_at": T0 + timedelta(seconds=n),
        "latency_ms": 100.0 + n,
        "endpoint": "chat",
        "stream": False,
        "status": 200,
        "outcome": "ok",
        "team": "alpha",
        "key_id": "k1",
        "model_requested": "chat-default",
        "model_served": "m1",
        "input_tokens": 10,
        "output_tokens": 5,
        "cost_usd": 0.001,
    }
    values.update(fields)
    return RequestRecord(**values)


def row(n: int, **fields: Any) -> AuditRow:
    return AuditRow.from_record(record(n, **fields), None)


async def open_store(
    kind: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    policy: AuditPolicy | None = None,
    cipher: PromptCipher | None = None,
) -> AuditStore:
    """A fresh store: a new SQLite file, or a uniquely named table on the shared PostgreSQL."""
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/audit-{uuid.uuid4().hex[:8]}.db"
    else:
        url = request.getfixturevalue("postgres_url")
    store = AuditStore(url, policy, cipher, table=f"audit_{uuid.uuid4().hex[:12]}")
    await store.init()
    return store


async def close_store(store: AuditStore) -> None:
    await store.drop()
    await store.aclose()


@pytest.fixture(params=["sqlite", "postgresql"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def store(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[AuditStore]:
    policy = AuditPolicy(
        retention_days=30,
        teams={"short": TeamAuditPolicy(retention_days=1), "long": TeamAuditPolicy()},
        percentile_row_cap=10,
    )
    s = await open_store(kind, request, tmp_path, policy)
    yield s
    await close_store(s)


async def count(store: AuditStore) -> int:
    async with store._engine.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(store.table)) or 0)


async def test_insert_is_idempotent_on_request_id(store: AuditStore) -> None:
    assert await store.insert_many([row(1), row(2)]) == 2
    assert await store.insert_many([row(2), row(3)]) == 1  # a replayed batch
    assert await store.insert_many([row(1), row(2), row(3)]) == 0
    assert await store.insert_many([]) == 0
    assert await count(store) == 3


async def test_rows_round_trip_every_field(store: AuditStore) -> None:
    full = row(
        7,
        stream=True,
        ttft_ms=12.5,
        subject="svc-search",
        project="p1",
        provider="vertex",
        cached_input_tokens=3,
        cache="hit",
        fallback_from="m0",
        finish_reason="stop",
        guardrails={"redacted.EMAIL": 2},
        prompt="hello [EMAIL]",
        response="hi",
        trace_id="a" * 32,
        error_code=None,
    )
    await store.insert_many([full])
    page = await store.query()
    assert page.rows == [full]
    assert page.rows[0].started_at.tzinfo is not None


async def test_query_is_newest_first_with_keyset_pages(store: AuditStore) -> None:
    # Two rows share a timestamp: the cursor must not skip or repeat either.
    rows = [row(n) for n in range(7)] + [row(100, started_at=T0 + timedelta(seconds=3))]
    await store.insert_many(rows)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await store.query(limit=3, cursor=cursor)
        seen += [r.request_id for r in page.rows]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    expected = sorted(rows, key=lambda r: (r.started_at, r.request_id), reverse=True)
    assert seen == [r.request_id for r in expected]
    assert pages == 3


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"team": "beta"}, ["req-000003"]),
        ({"model": "m2"}, ["req-000004"]),  # the serving model
        ({"model": "alias-x"}, ["req-000004"]),  # or the requested name
        ({"since": T0 + timedelta(seconds=2)}, ["req-000004", "req-000003", "req-000002"]),
        ({"until": T0 + timedelta(seconds=2)}, ["req-000001"]),  # until is exclusive
        ({"team": "alpha", "model": "m1", "limit": 1}, ["req-000002"]),
    ],
)
async def test_query_filters(
    store: AuditStore, filters: dict[str, Any], expected: list[str]
) -> None:
    await store.insert_many(
        [
            row(1),
            row(2),
            row(3, team="beta"),
            row(4, model_requested="alias-x", model_served="m2"),
        ]
    )
    page = await store.query(**filters)
    assert [r.request_id for r in page.rows] == expected


async def test_a_bad_cursor_is_an_invalid_request(store: AuditStore) -> None:
    with pytest.raises(InvalidRequest) as info:
        await store.query(cursor="not-a-cursor")
    assert info.value.param == "cursor"


async def test_purge_follows_each_teams_retention(store: AuditStore) -> None:
    now = T0 + timedelta(days=40)
    await store.insert_many(
        [
            row(1, team="short", started_at=now - timedelta(hours=25)),  # > 1 day: gone
            row(2, team="short", started_at=now - timedelta(hours=23)),
            row(3, team="alpha", started_at=now - timedelta(days=31)),  # > default 30: gone
            row(4, team="alpha", started_at=now - timedelta(days=29)),
            row(5, team="long", started_at=now - timedelta(days=31)),  # no override: default
            row(6, team=None, started_at=now - timedelta(days=31)),  # unauthenticated
        ]
    )
    assert await store.purge(now) == 4
    assert await store.purge(now) == 0  # idempotent
    left = sorted(r.request_id for r in (await store.query()).rows)
    assert left == ["req-000002", "req-000004"]


async def test_only_one_postgres_replica_purges_per_round(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    store = await open_store("postgresql", request, tmp_path, AuditPolicy(retention_days=1))
    other = create_async_engine(request.getfixturevalue("postgres_url"))
    try:
        await store.insert_many([row(1, started_at=T0 - timedelta(days=2))])
        async with other.connect() as conn:
            # Another replica is mid-purge: it holds the purge lock in its transaction.
            await conn.execute(sa.text("SELECT pg_advisory_xact_lock(727004)"))
            assert await store.purge(T0) is None
            await conn.rollback()
        assert await store.purge(T0) == 1
    finally:
        await other.dispose()
        await close_store(store)


async def test_usage_aggregates_by_team_model_and_day(store: AuditStore) -> None:
    day2 = T0 + timedelta(days=1)
    rows = [row(n, latency_ms=float(n)) for n in range(1, 21)]  # 20 ok, latencies 1..20
    rows += [
        row(21, outcome="error", status=502, latency_ms=5000.0),
        row(22, outcome="rejected", status=429, latency_ms=1.0),
        row(23, cache="hit", latency_ms=2.0, cost_usd=0.0),
        row(24, cache="semantic-hit", latency_ms=2.0, cost_usd=0.0),
        row(25, team="beta", started_at=day2, input_tokens=7, output_tokens=1, cost_usd=0.5),
        row(26, team="alpha", model_served=None, outcome="rejected", status=403),
        row(27, started_at=T0 - timedelta(days=30)),  # outside the window
    ]
    await store.insert_many(rows)
    report = await store.usage(T0 - timedelta(hours=1), T0 + timedelta(days=2))
    by_key = {(r.team, r.model, r.day): r for r in report}
    assert set(by_key) == {
        ("alpha", "m1", "2026-03-01"),
        ("alpha", "chat-default", "2026-03-01"),  # no model answered: the one asked for
        ("beta", "m1", "2026-03-02"),
    }
    main = by_key[("alpha", "m1", "2026-03-01")]
    assert main.requests == 24
    assert main.input_tokens == 240 and main.output_tokens == 120
    assert main.cost_usd == pytest.approx(0.022)
    assert main.errors == 2 and main.error_rate == pytest.approx(2 / 24)
    assert main.cache_hits == 2 and main.cache_hit_rate == pytest.approx(2 / 24)
    # Percentiles over answered requests only, from at most 10 of them (the row cap).
    assert main.latency_samples == 10
    assert main.p50_ms is not None and main.p95_ms is not None
    assert 1.0 <= main.p50_ms <= main.p95_ms <= 20.0
    beta = by_key[("beta", "m1", "2026-03-02")]
    assert (beta.requests, beta.input_tokens, beta.output_tokens) == (1, 7, 1)
    assert beta.p50_ms == beta.p95_ms == 125.0
    assert [r.team for r in await store.usage(T0, T0 + timedelta(days=2), "beta")] == ["beta"]


async def test_usage_percentiles_are_exact_under_the_cap(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    store = await open_store(kind, request, tmp_path)
    try:
        await store.insert_many([row(n, latency_ms=float(n)) for n in range(1, 101)])
        (only,) = await store.usage(T0, T0 + timedelta(days=1))
        assert (only.p50_ms, only.p95_ms, only.latency_samples) == (50.0, 95.0, 100)
    finally:
        await close_store(store)


async def test_inventory_says_who_used_which_model(store: AuditStore) -> None:
    await store.insert_many(
        [
            row(1, key_id="k1"),
            row(5, key_id="k1"),
            row(2, key_id="k2", team="beta", model_requested="m9", model_served="m9"),
            row(3, team=None, key_id=None),  # failed authentication: nobody to tell
        ]
    )
    inventory = await store.inventory()
    assert [(i.team, i.key_id, i.model_requested, i.requests) for i in inventory] == [
        ("alpha", "k1", "chat-default", 2),
        ("beta", "k2", "m9", 1),
    ]
    first = inventory[0]
    assert first.first_seen == T0 + timedelta(seconds=1)
    assert first.last_seen == T0 + timedelta(seconds=5)
    assert [i.team for i in await store.inventory(team="beta")] == ["beta"]
    assert await store.inventory(since=T0 + timedelta(seconds=6)) == []
