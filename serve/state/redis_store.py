"""Redis state shared by every ingress replica (production)."""

from __future__ import annotations

from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from serve.state.protocol import LogEntry

# INCRBY and set the expiry only when the key was created, in one atomic step.
_INCR_WITH_TTL = """
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if tonumber(ARGV[2]) > 0 and redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return v
"""

# Append to a bounded stream with ids "<microseconds>-<n>" from the server clock, never
# below the newest entry's: a log deleted (expired, evicted) and created again still hands
# out ids above any cursor a replica saved, unless recreated within the same microsecond.
_LOG_APPEND = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #newest > 0 then
  local last = tonumber(string.match(newest[1][1], '^(%d+)'))
  if last > now then now = last end
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], string.format('%.0f', now) .. '-*',
  'v', ARGV[1])
if tonumber(ARGV[3]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return id
"""


class RedisStateStore:
    def __init__(self, url: str, prefix: str = "") -> None:
        self._prefix = prefix
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            url, socket_connect_timeout=2, socket_timeout=2, health_check_interval=30
        )
        self._incr = self._redis.register_script(_INCR_WITH_TTL)
        self._log_append = self._redis.register_script(_LOG_APPEND)

    @property
    def client(self) -> aioredis.Redis:
        """The connection pool, shared with stores that need their own scripts (admission)."""
        return self._redis

    @property
    def prefix(self) -> str:
        return self._prefix

    @staticmethod
    def _ms(ttl_s: float | None) -> int | None:
        return None if ttl_s is None else max(1, int(ttl_s * 1000))

    async def get(self, key: str) -> bytes | None:
        return cast(bytes | None, await self._redis.get(self._prefix + key))

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        await self._redis.set(self._prefix + key, value, px=self._ms(ttl_s))

    async def set_if_absent(self, key: str, value: bytes, ttl_s: float | None = None) -> bool:
        return bool(await self._redis.set(self._prefix + key, value, px=self._ms(ttl_s), nx=True))

    async def delete(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)

    async def incr(self, key: str, amount: int = 1, ttl_s: float | None = None) -> int:
        result: Any = await self._incr(
            keys=[self._prefix + key], args=[amount, self._ms(ttl_s) or 0]
        )
        return int(result)

    async def log_append(
        self, key: str, value: bytes, max_len: int, ttl_s: float | None = None
    ) -> str:
        result: Any = await self._log_append(
            keys=[self._prefix + key], args=[value, max(1, max_len), self._ms(ttl_s) or 0]
        )
        return _text(result)

    async def log_read(
        self, key: str, after: str | None = None, limit: int = 1000
    ) -> list[LogEntry]:
        low = "-" if after is None else "(" + after
        rows: Any = await self._redis.xrange(
            self._prefix + key, min=low, max="+", count=max(1, limit)
        )
        return [LogEntry(_text(entry_id), fields[b"v"]) for entry_id, fields in rows or ()]

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except RedisError:
            return False

    async def aclose(self) -> None:
        await self._redis.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
