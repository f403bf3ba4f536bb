"""In-process state for the embedded default (one ingress replica only)."""

from __future__ import annotations

import time
from collections.abc import Callable


class MemoryStateStore:
    def __init__(self, prefix: str = "", clock: Callable[[], float] = time.monotonic) -> None:
        self._prefix = prefix
        self._clock = clock
        self._data: dict[str, tuple[bytes, float | None]] = {}

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

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        self._data.clear()
