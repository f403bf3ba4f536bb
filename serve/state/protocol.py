"""The state-store seam shared by every ingress replica."""

from __future__ import annotations

from typing import NamedTuple, Protocol


class LogEntry(NamedTuple):
    """One entry of a bounded log: its opaque cursor and its value."""

    cursor: str
    value: bytes


class StateStore(Protocol):
    """Small atomic primitives; callers namespace keys, the store adds its prefix."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None: ...

    async def set_if_absent(self, key: str, value: bytes, ttl_s: float | None = None) -> bool:
        """Set only when the key does not exist; True when this call set it."""
        ...

    async def delete(self, key: str) -> None: ...

    async def incr(self, key: str, amount: int = 1, ttl_s: float | None = None) -> int:
        """Add atomically and return the new value; the TTL is set when the key is created."""
        ...

    async def log_append(
        self, key: str, value: bytes, max_len: int, ttl_s: float | None = None
    ) -> str:
        """Append to a bounded log shared by every replica; return the entry's cursor.

        Cursors are opaque and increase strictly per key, also when the log expired and
        was created again, so a reader's saved cursor never skips new entries. Only the
        newest ``max_len`` entries are kept; ``ttl_s`` (re)sets the whole log's expiry.
        """
        ...

    async def log_read(
        self, key: str, after: str | None = None, limit: int = 1000
    ) -> list[LogEntry]:
        """Entries after the cursor ``after`` (from the oldest kept when None), oldest first."""
        ...

    async def ping(self) -> bool: ...

    async def aclose(self) -> None: ...
