"""The periodic retention purge: rounds, errors survived, the real store purged."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from test_audit_store import T0, close_store, open_store, row

from serve.audit import AuditPolicy, RetentionTask

WAIT_S = 20.0


class Scripted:
    """A purge that answers from a script and signals each round."""

    def __init__(self, answers: list[int | Exception | None]) -> None:
        self.answers = answers
        self.calls: list[datetime] = []
        self.round = asyncio.Event()

    async def purge(self, now: datetime) -> int | None:
        self.calls.append(now)
        self.round.set()
        answer = self.answers.pop(0) if self.answers else 0
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.mark.parametrize(
    ("answers", "rounds", "deleted"),
    [
        ([3, 2], 2, 5),
        ([None, 4], 2, 4),  # another replica held the lock in the first round
        ([ConnectionError("down"), 4], 1, 4),  # a failed round is logged, not raised
    ],
)
async def test_run_once_counts(
    answers: list[int | Exception | None], rounds: int, deleted: int
) -> None:
    task = RetentionTask(Scripted(answers), interval_s=3600, now=lambda: T0)
    await task.run_once()
    await task.run_once()
    assert (task.rounds, task.deleted) == (rounds, deleted)


async def test_the_task_purges_on_start_and_stops_promptly() -> None:
    store = Scripted([ConnectionError("down")])
    task = RetentionTask(store, interval_s=3600, now=lambda: T0)
    task.start()
    await asyncio.wait_for(store.round.wait(), WAIT_S)
    await asyncio.wait_for(task.aclose(), WAIT_S)  # does not wait out the hour
    assert store.calls == [T0]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_replicas_purging_together_delete_each_row_once(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    store = await open_store(kind, request, tmp_path, AuditPolicy(retention_days=1))
    try:
        await store.insert_many(
            [row(n, started_at=T0 - timedelta(days=2, seconds=n)) for n in range(5)]
            + [row(9, started_at=T0)]
        )
        replicas = [RetentionTask(store, 3600, now=lambda: T0) for _ in range(3)]
        await asyncio.gather(*(r.run_once() for r in replicas))
        assert sum(r.deleted for r in replicas) == 5
        assert [r.request_id for r in (await store.query()).rows] == ["req-000009"]
    finally:
        await close_store(store)
