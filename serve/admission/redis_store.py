"""Admission state in Redis: one Lua script per admission, one per settlement.

Every check of a request is evaluated and, only if all pass, recorded in the same script,
so replicas cannot race between reading and writing. Time is Redis's own clock (``TIME``),
the same for every replica. Layout per check key ``K``:

- sliding windows: ``K:z`` (zset rid -> time ms), ``K:h`` (hash rid -> amount), ``K:s``
  (running sum); entries older than the window are dropped before the check;
- concurrency: ``K`` (zset rid -> lease expiry ms);
- budgets: ``K:spent`` (settled nano-USD), ``K:r`` (zset rid -> lease expiry),
  ``K:ra`` (hash rid -> reserved amount), ``K:rs`` (sum reserved).

Nothing leaks: a reservation whose replica died is dropped when its lease expires.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from serve.admission.checks import Budget, Check, CheckState, Concurrency, Verdict, Window

__all__ = ["RedisAdmissionStore"]

_BUDGET_TTL_MS = 40 * 24 * 3600 * 1000  # a month's keys outlive the month by some days

_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rid, lease, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local states = {}
local function drop_old_window(k, horizon)
  local old = redis.call('ZRANGEBYSCORE', k .. ':z', '-inf', horizon)
  if #old == 0 then return end
  local freed = 0
  for _, id in ipairs(old) do
    freed = freed + tonumber(redis.call('HGET', k .. ':h', id) or '0')
    redis.call('HDEL', k .. ':h', id)
  end
  redis.call('ZREMRANGEBYSCORE', k .. ':z', '-inf', horizon)
  redis.call('DECRBY', k .. ':s', freed)
end
for i = 1, n do
  local b = 3 + (i - 1) * 4
  local kind, limit = ARGV[b + 1], tonumber(ARGV[b + 2])
  local amount, extra = tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  local k = KEYS[i]
  local used, reset, retry = 0, 0, -1
  if kind == 'w' then
    drop_old_window(k, now - extra)
    used = tonumber(redis.call('GET', k .. ':s') or '0')
    local first = redis.call('ZRANGE', k .. ':z', 0, 0, 'WITHSCORES')
    if #first > 0 then reset = tonumber(first[2]) + extra - now end
    if used + amount > limit then
      local need, freed = used + amount - limit, 0
      retry = extra
      local entries = redis.call('ZRANGE', k .. ':z', 0, -1, 'WITHSCORES')
      for j = 1, #entries, 2 do
        freed = freed + tonumber(redis.call('HGET', k .. ':h', entries[j]) or '0')
        if freed >= need then retry = tonumber(entries[j + 1]) + extra - now break end
      end
      if retry < 1 then retry = 1 end
    else
      used = used + amount
    end
  elseif kind == 'c' then
    redis.call('ZREMRANGEBYSCORE', k, '-inf', now)
    used = redis.call('ZCARD', k)
    if used + 1 > limit then retry = 1000 else used = used + 1 end
  else
    local expired = redis.call('ZRANGEBYSCORE', k .. ':r', '-inf', now)
    if #expired > 0 then
      local freed = 0
      for _, id in ipairs(expired) do
        freed = freed + tonumber(redis.call('HGET', k .. ':ra', id) or '0')
        redis.call('HDEL', k .. ':ra', id)
      end
      redis.call('ZREMRANGEBYSCORE', k .. ':r', '-inf', now)
      redis.call('DECRBY', k .. ':rs', freed)
    end
    used = tonumber(redis.call('GET', k .. ':spent') or '0')
      + tonumber(redis.call('GET', k .. ':rs') or '0')
    if extra >= 0 and used + amount > limit then retry = extra else used = used + amount end
  end
  table.insert(states, limit)
  table.insert(states, used)
  table.insert(states, reset)
  if retry >= 0 then
    return {0, i, retry, states}
  end
end
for i = 1, n do
  local b = 3 + (i - 1) * 4
  local kind, amount, extra = ARGV[b + 1], tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  local k = KEYS[i]
  if kind == 'w' then
    redis.call('ZADD', k .. ':z', now, rid)
    redis.call('HSET', k .. ':h', rid, amount)
    redis.call('INCRBY', k .. ':s', amount)
    for _, s in ipairs({':z', ':h', ':s'}) do redis.call('PEXPIRE', k .. s, extra + lease) end
  elseif kind == 'c' then
    redis.call('ZADD', k, now + lease, rid)
    redis.call('PEXPIRE', k, lease)
  else
    redis.call('ZADD', k .. ':r', now + lease, rid)
    redis.call('HSET', k .. ':ra', rid, amount)
    redis.call('INCRBY', k .. ':rs', amount)
    for _, s in ipairs({':r', ':ra', ':rs', ':spent'}) do
      redis.call('PEXPIRE', k .. s, ARGV[3 + n * 4 + 1])
    end
  end
end
return {1, 0, 0, states}
"""

_SETTLE = """
local rid, n = ARGV[1], tonumber(ARGV[2])
local out = {}
for i = 1, n do
  local kind, actual = ARGV[2 + (i - 1) * 2 + 1], tonumber(ARGV[2 + (i - 1) * 2 + 2])
  local k = KEYS[i]
  local spent = 0
  if kind == 't' then
    local old = redis.call('HGET', k .. ':h', rid)
    if old then
      redis.call('HSET', k .. ':h', rid, actual)
      redis.call('INCRBY', k .. ':s', actual - tonumber(old))
    end
  elseif kind == 'c' then
    redis.call('ZREM', k, rid)
  elseif kind == 'b' then
    local amount = redis.call('HGET', k .. ':ra', rid)
    if amount then
      redis.call('HDEL', k .. ':ra', rid)
      redis.call('ZREM', k .. ':r', rid)
      redis.call('DECRBY', k .. ':rs', tonumber(amount))
    end
    spent = redis.call('INCRBY', k .. ':spent', actual)
    redis.call('PEXPIRE', k .. ':spent', ARGV[2 + n * 2 + 1])
  end
  table.insert(out, spent)
end
return out
"""


class RedisAdmissionStore:
    def __init__(self, redis: aioredis.Redis, prefix: str = "") -> None:
        self._prefix = prefix
        self._admit = redis.register_script(_ADMIT)
        self._settle = redis.register_script(_SETTLE)

    async def admit(self, rid: str, checks: Sequence[Check], lease_s: float) -> Verdict:
        keys = [self._prefix + c.key for c in checks]
        args: list[Any] = [rid, int(lease_s * 1000), len(checks)]
        for check in checks:
            if isinstance(check, Window):
                args += ["w", check.limit, check.amount, int(check.window_s * 1000)]
            elif isinstance(check, Concurrency):
                args += ["c", check.limit, 1, 0]
            else:
                hard = int(check.retry_after_s * 1000) if check.hard else -1
                args += ["b", check.cap, check.amount, max(hard, 1000) if check.hard else -1]
        args.append(_BUDGET_TTL_MS)
        admitted, failed, retry_ms, flat = await self._admit(keys=keys, args=args)
        states = tuple(
            CheckState(int(flat[i]), int(flat[i + 1]), int(flat[i + 2]) / 1000)
            for i in range(0, len(flat), 3)
        )
        if admitted:
            return Verdict(True, states)
        return Verdict(False, states, int(failed) - 1, int(retry_ms) / 1000)

    async def settle(
        self, rid: str, checks: Sequence[Check], actual: Sequence[int]
    ) -> tuple[int, ...]:
        keys = [self._prefix + c.key for c in checks]
        args: list[Any] = [rid, len(checks)]
        for check, amount in zip(checks, actual, strict=True):
            if isinstance(check, Window):
                args += ["t" if check.unit == "tokens" else "r", amount]
            elif isinstance(check, Concurrency):
                args += ["c", 0]
            else:
                assert isinstance(check, Budget)
                args += ["b", amount]
        args.append(_BUDGET_TTL_MS)
        result: Any = await self._settle(keys=keys, args=args)
        return tuple(int(v) for v in result)
