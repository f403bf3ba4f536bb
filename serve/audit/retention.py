"""The periodic retention purge: every replica runs it; the work is idempotent.

On PostgreSQL the store takes a transaction-scoped `pg_try_advisory_xact_lock`, so in a
round one replica deletes and the others skip; on SQLite (one process) it just deletes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Purgeable", "RetentionTask"]

log = logging.getLogger("raygate.audit")


class Purgeable(Protocol):
    async def purge(self, now: datetime) -> int | None:
        """Delete expired rows; the count, or None when another replica did the round."""
        ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


class RetentionTask:
    def __init__(
        self,
        store: Purgeable,
        interval_s: float,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._store = store
        self._interval_s = interval_s
        self._now = now
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0
        self.deleted = 0

    async def run_once(self) -> int | None:
        """One purge; errors are logged (the next round tries again), never raised."""
        try:
            deleted = await self._store.purge(self._now())
        except Exception as exc:
            log.warning("audit retention purge failed: %s", exc)
            return None
        self.rounds += 1
        if deleted:
            self.deleted += deleted
            log.info("audit retention: %d rows deleted", deleted)
        return deleted

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="audit-purge")

    async def _run(self) -> None:
        while not self._stop.is_set():
            await self.run_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._interval_s)

    async def aclose(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
