"""In-process state for the embedded default (one ingress replica only)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from serve.state.protocol import LogEntry


class MemoryStateStore:
    def __init__(self, prefix: str = "", clock: Callable[[], float] = time.monotonic) -> None:
        self._prefix = prefix
        self._clock = clock
        self._data: dict[str, tuple[bytes, float | None]] = {}
        # Bounded logs: entries and the log's expiry; one counter for every log keeps
        # cursors increasing even when a log expires and is created again.
        self._logs: dict[str, tuple[deque[tuple[int, bytes]], float | None]] = {}
        self._log_seq = 0

    def _live(self, key: str) -> bytes | None:
        entry = self._data.get(self._prefix + key)
        if entry is None:
            return None
        value, expires = entry
        if expires is not None and expires <= self._clock():
            del self._data[self._prefix + key]
            return None
        return value

    def _expiry(self, ttl_s: float | None) -> float | None:
        return None if ttl_s is None else self._clock() + ttl_s

    async def get(self, key: str) -> bytes | None:
        return self._live(key)

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        self._data[self._prefix + key] = (value, self._expiry(ttl_s))

    async def set_if_absent(self, key: str, value: bytes, ttl_s: float | None = None) -> bool:
        if self._live(key) is not None:
            return False
        await self.set(key, value, ttl_s)
        return True

    async def delete(self, key: str) -> None:
        self._data.pop(self._prefix + key, None)

    async def incr(self, key: str, amount: int = 1, ttl_s: float | None = None) -> int:
        current = self._live(key)
        full = self._prefix + key
        if current is None:
            self._data[full] = (str(amount).encode(), self._expiry(ttl_s))
            return amount
        value = int(current) + amount
        self._data[full] = (str(value).encode(), self._data[full][1])
        return value

    def _live_log(self, key: str) -> deque[tuple[int, bytes]] | None:
        entry = self._logs.get(self._prefix + key)
        if entry is None:
            return None
        entries, expires = entry
        if expires is not None and expires <= self._clock():
            del self._logs[self._prefix + key]
            return None
        return entries

    async def log_append(
        self, key: str, value: bytes, max_len: int, ttl_s: float | None = None
    ) -> str:
        full = self._prefix + key
        entries = self._live_log(key)
        # Without a TTL the log keeps the expiry it had (as Redis does on XADD).
        expires = self._logs[full][1] if entries is not None else None
        if entries is None:
            entries = deque()
        if ttl_s is not None:
            expires = self._expiry(ttl_s)
        self._log_seq += 1
        entries.append((self._log_seq, value))
        while len(entries) > max(1, max_len):
            entries.popleft()
        self._logs[full] = (entries, expires)
        return str(self._log_seq)

    async def log_read(
        self, key: str, after: str | None = None, limit: int = 1000
    ) -> list[LogEntry]:
        entries = self._live_log(key)
        if entries is None:
            return []
        start = -1 if after is None else int(after)
        out = [LogEntry(str(seq), value) for seq, value in entries if seq > start]
        return out[: max(0, limit)]

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        self._data.clear()
        self._logs.clear()
