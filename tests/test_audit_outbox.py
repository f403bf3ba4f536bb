"""The audit outbox: never in the response path's way, durable across a crash, no dupes.

Crashes are simulated without killing anything: an outbox is dropped without `aclose()`
(its shipping task, if it had one, is cancelled where it stood, as a dead process would
stop), then a new outbox on the same spool root must ship exactly what was observed.
"""

from __future__ import annotations

import asyncio
import gc
import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa
from test_audit_store import close_store, open_store, record

from serve.audit import AuditOutbox, AuditRow, AuditStore, OutboxPolicy, PromptCipher
from serve.record import RequestRecord

WAIT_S = 20.0
FAST = OutboxPolicy(batch_size=4, flush_interval_s=300, retry_initial_s=0.01, retry_max_s=0.05)


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AuditStore]:
    s = await open_store(str(request.param), request, tmp_path)
    yield s
    await close_store(s)


async def stored(store: AuditStore) -> list[AuditRow]:
    return (await store.query(limit=1000)).rows


async def count(store: AuditStore) -> int:
    async with store._engine.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(store.table)) or 0)


class ControlledSink:
    """Delegates to the real store; can be down (raise) or freeze after a commit."""

    def __init__(self, store: AuditStore) -> None:
        self.store = store
        self.down = False
        self.freeze_after_commit = False
        self.failed = asyncio.Event()
        self.committed = asyncio.Event()
        self.frozen_task: asyncio.Task[object] | None = None
        self.calls = 0

    async def insert_many(self, rows: Sequence[AuditRow]) -> int:
        self.calls += 1
        if self.down:
            self.failed.set()
            raise ConnectionError("database is down")
        new = await self.store.insert_many(rows)
        self.committed.set()
        if self.freeze_after_commit:
            self.frozen_task = asyncio.current_task()
            await asyncio.Event().wait()  # committed, but the segment is never deleted
        return new


def records(k: int, start: int = 0) -> list[RequestRecord]:
    return [record(start + n) for n in range(k)]


async def wait_for(event: asyncio.Event) -> None:
    await asyncio.wait_for(event.wait(), WAIT_S)


async def test_observe_then_drain(store: AuditStore, tmp_path: Path) -> None:
    outbox = AuditOutbox(store, tmp_path / "spool", FAST, instance="r1")
    outbox.start()
    for r in records(10):
        outbox.observe(r)
    assert await outbox.wait_drained(WAIT_S)
    assert await count(store) == 10
    assert outbox.stats().shipped == 10 and outbox.stats().spooled_bytes == 0
    await outbox.aclose()


@pytest.mark.parametrize("same_instance", [True, False])
async def test_records_of_a_crashed_outbox_are_shipped_by_the_next(
    store: AuditStore, tmp_path: Path, same_instance: bool
) -> None:
    spool = tmp_path / "spool"
    crashed = AuditOutbox(store, spool, FAST, instance="r1")
    for r in records(9):
        crashed.observe(r)
    del crashed  # no aclose: the process died before its first shipment
    gc.collect()
    assert await count(store) == 0
    restarted = AuditOutbox(store, spool, FAST, instance="r1" if same_instance else "r2")
    restarted.start()
    assert await restarted.wait_drained(WAIT_S)
    # A dead process's own directory (different instance) is adopted on start.
    await restarted.aclose()
    assert sorted(r.request_id for r in await stored(store)) == [r.request_id for r in records(9)]
    assert [p.name for p in spool.iterdir() if not p.name.startswith(".")] == [
        "r1" if same_instance else "r2"
    ]


async def test_a_crash_between_commit_and_delete_never_duplicates(
    store: AuditStore, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    sink = ControlledSink(store)
    sink.freeze_after_commit = True
    first = AuditOutbox(sink, spool, FAST, instance="r1")
    first.start()
    for r in records(10):
        first.observe(r)  # 10 >= batch size: wakes the shipper
    await wait_for(sink.committed)
    assert await count(store) == 4  # the first batch committed, its segment still on disk
    assert sink.frozen_task is not None
    sink.frozen_task.cancel()  # the process dies where it stood
    await asyncio.wait([sink.frozen_task], timeout=WAIT_S)
    sink.frozen_task = None  # its traceback would keep the dead outbox (and lock) alive
    del first
    gc.collect()
    second = AuditOutbox(store, spool, FAST, instance="r2")
    second.start()
    assert await second.wait_drained(WAIT_S)
    await second.aclose()
    assert await count(store) == 10
    assert second.stats().shipped == 6 and second.stats().replayed == 4


async def test_a_down_database_grows_the_spool_until_it_recovers(
    store: AuditStore, tmp_path: Path
) -> None:
    sink = ControlledSink(store)
    sink.down = True
    outbox = AuditOutbox(sink, tmp_path / "spool", FAST, instance="r1")
    outbox.start()
    for r in records(12):
        outbox.observe(r)  # never waits for the database
    await wait_for(sink.failed)
    assert await count(store) == 0
    assert outbox.stats().spooled_bytes > 0 and outbox.stats().failures >= 1
    sink.down = False
    assert await outbox.wait_drained(WAIT_S)
    assert await count(store) == 12
    assert outbox.stats().dropped == 0
    await outbox.aclose()


async def test_a_full_spool_drops_and_counts(tmp_path: Path) -> None:
    class Down:
        async def insert_many(self, rows: Sequence[AuditRow]) -> int:
            raise ConnectionError("down")

    policy = OutboxPolicy(max_spool_bytes=64 * 1024, flush_interval_s=300, close_timeout_s=0)
    outbox = AuditOutbox(Down(), tmp_path / "spool", policy, instance="r1")
    big = [record(n, prompt="x" * 2000) for n in range(100)]
    for r in big:
        outbox.observe(r)
    stats = outbox.stats()
    assert 0 < stats.dropped < 100
    assert stats.spooled_bytes <= 64 * 1024
    kept = sum(
        len(p.read_bytes().splitlines())
        for p in (tmp_path / "spool" / "r1").iterdir()
        if p.name != "lock"
    )
    assert kept + stats.dropped == 100
    await outbox.aclose()


async def test_observe_never_raises(tmp_path: Path) -> None:
    outbox = AuditOutbox(FakeSink(), tmp_path / "spool", FAST, instance="r1")
    unencodable = record(1, guardrails={"x": object()})  # type: ignore[dict-item]
    outbox.observe(unencodable)
    assert outbox.stats().dropped == 1
    await outbox.aclose()
    outbox.observe(record(2))  # after close: counted, not raised
    assert outbox.stats().dropped == 2


class FakeSink:
    def __init__(self) -> None:
        self.rows: dict[str, AuditRow] = {}

    async def insert_many(self, rows: Sequence[AuditRow]) -> int:
        new = [r for r in rows if r.request_id not in self.rows]
        self.rows.update((r.request_id, r) for r in new)
        return len(new)


async def test_aclose_ships_what_is_spooled(tmp_path: Path) -> None:
    sink = FakeSink()
    outbox = AuditOutbox(sink, tmp_path / "spool", FAST, instance="r1")
    outbox.start()
    for r in records(3):  # under the batch size, long interval: only aclose ships them
        outbox.observe(r)
    await outbox.aclose()
    assert len(sink.rows) == 3


async def test_aclose_waits_a_bounded_time_and_keeps_the_rest(tmp_path: Path) -> None:
    class Hangs:
        async def insert_many(self, rows: Sequence[AuditRow]) -> int:
            await asyncio.Event().wait()
            return 0

    policy = OutboxPolicy(flush_interval_s=300, close_timeout_s=0.05)
    outbox = AuditOutbox(Hangs(), tmp_path / "spool", policy, instance="r1")
    outbox.start()
    outbox.observe(record(1))
    await asyncio.wait_for(outbox.aclose(), WAIT_S)
    sink = FakeSink()
    later = AuditOutbox(sink, tmp_path / "spool", FAST, instance="r1")
    later.start()
    assert await later.wait_drained(WAIT_S)
    await later.aclose()
    assert list(sink.rows) == ["req-000001"]


async def test_a_torn_last_line_is_skipped_not_fatal(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    crashed = AuditOutbox(FakeSink(), spool, FAST, instance="r1")
    for r in records(2):
        crashed.observe(r)
    del crashed
    gc.collect()
    current = spool / "r1" / "current"  # the write a crash cut short:
    current.write_bytes(current.read_bytes() + b'{"request_id": "half')
    sink = FakeSink()
    outbox = AuditOutbox(sink, spool, FAST, instance="r1")
    outbox.start()
    assert await outbox.wait_drained(WAIT_S)
    await outbox.aclose()
    assert len(sink.rows) == 2 and outbox.stats().corrupt == 1


SECRET_PATTERNS = [
    re.compile(r"sk-rg-[A-Za-z0-9]"),
    re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),
    re.compile(r"\b(?:\d[ -]?){13,19}\b"),
]


async def test_k_records_of_every_outcome_give_k_rows_without_secrets(
    store: AuditStore, tmp_path: Path
) -> None:
    outcomes = [
        {"outcome": "ok"},
        {"outcome": "error", "status": 502, "error_code": "upstream_error"},
        {"outcome": "rejected", "status": 401, "team": None, "key_id": None},
        {"outcome": "rejected", "status": 429, "error_code": "rate_limit_exceeded"},
        {"outcome": "cancelled", "stream": True, "ttft_ms": 3.0},
    ]
    # Prompts as the gateway hands them over: already masked by the guardrails.
    masked = "mail [EMAIL_ADDRESS] card [CREDIT_CARD] key [SECRET]"
    k = 25
    batch = [
        record(n, prompt=masked, response="ok [EMAIL_ADDRESS]", **outcomes[n % len(outcomes)])
        for n in range(k)
    ]
    spool = tmp_path / "spool"
    outbox = AuditOutbox(store, spool, FAST, instance="r1")
    outbox.start()
    for r in batch:
        outbox.observe(r)
    assert await outbox.wait_drained(WAIT_S)
    await outbox.aclose()
    rows = await stored(store)
    assert len(rows) == k
    assert {r.outcome for r in rows} == {"ok", "error", "rejected", "cancelled"}
    for r in rows:
        text = str(r.as_dict())
        assert not any(p.search(text) for p in SECRET_PATTERNS), text


async def test_full_text_is_encrypted_before_it_reaches_the_disk(
    store: AuditStore, tmp_path: Path
) -> None:
    cipher = PromptCipher(bytes(range(32)))
    secret = "my card is 4111 1111 1111 1111, mail jane@example.com"
    spool = tmp_path / "spool"
    crashed = AuditOutbox(store, spool, FAST, cipher, instance="r1")
    crashed.observe(record(1, prompt_policy="full", prompt=secret, response="sure, Jane"))
    crashed.observe(record(2, prompt_policy="none", prompt="dropped", response="dropped"))
    spooled = b"".join(p.read_bytes() for p in (spool / "r1").iterdir())
    assert b"4111" not in spooled and b"jane@" not in spooled and b"dropped" not in spooled
    del crashed
    gc.collect()
    outbox = AuditOutbox(store, spool, FAST, cipher, instance="r1")
    outbox.start()
    assert await outbox.wait_drained(WAIT_S)
    await outbox.aclose()
    by_id = {r.request_id: r for r in await stored(store)}
    full, none = by_id["req-000001"], by_id["req-000002"]
    assert full.encrypted and full.key_version == cipher.version
    assert "4111" not in str(full.as_dict()) and "Jane" not in str(full.as_dict())
    assert full.revealed(cipher).prompt == secret
    assert full.revealed(cipher).response == "sure, Jane"
    assert none.prompt is None and none.response is None and not none.encrypted
