"""Redis state shared by every ingress replica (production)."""

from __future__ import annotations

from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

# INCRBY and set the expiry only when the key was created, in one atomic step.
_INCR_WITH_TTL = """
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if tonumber(ARGV[2]) > 0 and redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return v
"""


class RedisStateStore:
    def __init__(self, url: str, prefix: str = "") -> None:
        self._prefix = prefix
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            url, socket_connect_timeout=2, socket_timeout=2, health_check_interval=30
        )
        self._incr = self._redis.register_script(_INCR_WITH_TTL)

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

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except RedisError:
            return False

    async def aclose(self) -> None:
        await self._redis.aclose()
