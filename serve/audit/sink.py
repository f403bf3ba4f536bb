"""The seam between the audit outbox and the database."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from serve.audit.row import AuditRow

__all__ = ["AuditSink"]


class AuditSink(Protocol):
    async def insert_many(self, rows: Sequence[AuditRow]) -> int:
        """Store rows in one transaction; a request id already stored is skipped (replays
        never duplicate). Returns how many were new. Raises when nothing was committed."""
        ...
