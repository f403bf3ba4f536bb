"""`AuditOutbox`: the audit log's `RequestObserver`, off the response path.

`observe()` turns a record into its row (encrypting ``full`` text), appends the JSON line
to the local spool and returns: it never waits for the database and never raises. A
background task rotates the spool into segments, ships them in batches and deletes a
segment only after all its rows committed; replays are harmless (the store skips request
ids it already has). A slow or down database only grows the spool, up to
`max_spool_bytes`; beyond that records are dropped, counted and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from serve.audit.crypto import PromptCipher
from serve.audit.policy import OutboxPolicy
from serve.audit.row import AuditRow
from serve.audit.sink import AuditSink
from serve.audit.spool import SpoolDir, claim_orphans, open_spool
from serve.record import RequestRecord

__all__ = ["AuditOutbox", "OutboxStats"]

log = logging.getLogger("raygate.audit")

ORPHAN_SCAN_ROUNDS = 60  # look for dead processes' spools every this many rounds


@dataclass(frozen=True, slots=True)
class OutboxStats:
    spooled_bytes: int
    shipped: int  # rows the store took as new
    replayed: int  # rows shipped again that the store already had
    dropped: int  # records lost: spool full, or a record that could not be encoded
    corrupt: int  # unreadable lines in a segment (a write torn by a crash), skipped
    failures: int  # shipments that failed (and will be retried)


class AuditOutbox:
    def __init__(
        self,
        sink: AuditSink,
        spool_dir: Path,
        policy: OutboxPolicy | None = None,
        cipher: PromptCipher | None = None,
        *,
        instance: str | None = None,
    ) -> None:
        """`spool_dir` is the expanded root; this process spools in `<root>/<instance>`
        (default ``pid-<pid>``) and ships what dead processes left beside it."""
        self._sink = sink
        self._policy = policy or OutboxPolicy()
        self._cipher = cipher
        self._root = spool_dir
        self._spool: SpoolDir = open_spool(spool_dir, instance or f"pid-{os.getpid()}")
        self._pending = 0
        self._shipped = self._replayed = self._dropped = self._corrupt = self._failures = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # -- the response path --------------------------------------------------------------

    def observe(self, record: RequestRecord) -> None:
        try:
            if self._closed:
                raise RuntimeError("audit outbox is closed")
            line = AuditRow.from_record(record, self._cipher).to_json() + b"\n"
            if self._spool.bytes + len(line) > self._policy.max_spool_bytes:
                self._drop(record, "spool full")
                return
            self._spool.append(line)
        except Exception as exc:
            self._drop(record, type(exc).__name__)
            return
        self._idle.clear()
        self._pending += 1
        if self._pending >= self._policy.batch_size:
            self._wake.set()

    def _drop(self, record: RequestRecord, why: str) -> None:
        self._dropped += 1
        if self._dropped == 1 or self._dropped % 1000 == 0:
            log.error(
                "audit: record %s dropped (%s); %d dropped so far",
                record.request_id,
                why,
                self._dropped,
            )

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start shipping (call inside the event loop that will observe)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="audit-outbox")

    def stats(self) -> OutboxStats:
        return OutboxStats(
            spooled_bytes=self._spool.bytes,
            shipped=self._shipped,
            replayed=self._replayed,
            dropped=self._dropped,
            corrupt=self._corrupt,
            failures=self._failures,
        )

    async def wait_drained(self, timeout_s: float) -> bool:
        """Ship now and wait until the spool is empty; False if that took too long."""
        self._wake.set()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def aclose(self) -> None:
        """Ship what is spooled, waiting at most `close_timeout_s`; the rest stays on disk
        and the next outbox on this spool root ships it."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        self._wake.set()
        task = self._task
        if task is None:
            task = asyncio.get_running_loop().create_task(self._ship_round())
        done, _ = await asyncio.wait([task], timeout=self._policy.close_timeout_s)
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            log.warning("audit: %d spooled bytes left for the next start", self._spool.bytes)
        self._spool.close()

    # -- shipping -----------------------------------------------------------------------

    async def _run(self) -> None:
        delay = self._policy.retry_initial_s
        rounds = 0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._policy.flush_interval_s)
            self._wake.clear()
            closing = self._closing.is_set()
            try:
                await self._ship_round(orphans=rounds % ORPHAN_SCAN_ROUNDS == 0)
                delay = self._policy.retry_initial_s
                rounds += 1
            except Exception as exc:
                self._failures += 1
                log.warning("audit: shipping failed (%s); retrying in %.1fs", exc, delay)
                if not closing:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._closing.wait(), delay)
                delay = min(delay * 2, self._policy.retry_max_s)
            if closing:
                return

    async def _ship_round(self, orphans: bool = False) -> None:
        if orphans:
            for orphan in claim_orphans(self._root, self._spool.path):
                log.info("audit: shipping the spool %s left by a stopped process", orphan.path)
                try:
                    await self._ship(orphan)
                finally:
                    orphan.discard()
        self._pending = 0
        await self._ship(self._spool)
        if self._spool.empty():
            self._idle.set()

    async def _ship(self, spool: SpoolDir) -> None:
        spool.rotate()
        for segment in spool.segments():
            lines = await asyncio.to_thread(spool.read, segment)
            rows = []
            for line in lines:
                try:
                    rows.append(AuditRow.from_json(line))
                except Exception:
                    self._corrupt += 1
                    log.warning("audit: unreadable line in %s skipped", segment)
            size = self._policy.batch_size
            for start in range(0, len(rows), size):
                batch = rows[start : start + size]
                new = await self._sink.insert_many(batch)
                self._shipped += new
                self._replayed += len(batch) - new
            spool.remove(segment)
