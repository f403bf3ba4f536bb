"""The Lua scripts of the Redis fair queue: every decision is one atomic script on Redis's
own clock (``TIME``), so ingress replicas never race between reading and writing.

Layout per model, under the base key ``B = <prefix>fq:{<model>}:`` (one hash slot):

- ``B leases``    zset slot id -> lease expiry (ms): the slots in flight;
- ``B heads``     zset team -> start tag of its first waiter (teams that wait);
- ``B q:<team>``  zset waiter id -> arrival sequence: the team's FIFO;
- ``B deadline``  zset waiter id -> when it gives up (ms): drops a dead replica's waiters;
- ``B wteam``     hash waiter id -> team;  ``B weight`` hash team -> weight;
- ``B finish``    hash team -> its last finish tag;  ``B vt`` virtual time (latest start);
- ``B seq``       arrival counter.

A grant moves the waiter id from its team's FIFO into ``leases`` (the waiter id becomes
the slot id) and is published on ``<prefix>fq:grants`` so its replica wakes at once.
"""

from __future__ import annotations

__all__ = ["ACQUIRE", "LEAVE", "POLL", "RELEASE", "RENEW", "STATS"]

# Shared by every script: KEYS[1] = base key, KEYS[2] = the grants channel.
_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local B, CH = KEYS[1], KEYS[2]
local IDLE = 86400000
local function fmt(x) return string.format('%.17g', x) end
local function touch(k) redis.call('PEXPIRE', B .. k, IDLE) end
local function vtime() return tonumber(redis.call('GET', B .. 'vt') or '0') end
local function start(team)
  return math.max(tonumber(redis.call('HGET', B .. 'finish', team) or '0'), vtime())
end
local function charge(team, s, weight)
  redis.call('HSET', B .. 'finish', team, fmt(s + 1 / weight))
  if s > vtime() then redis.call('SET', B .. 'vt', fmt(s)) end
  touch('finish') touch('vt')
end
local function drop_waiter(id, team)
  redis.call('ZREM', B .. 'q:' .. team, id)
  redis.call('ZREM', B .. 'deadline', id)
  redis.call('HDEL', B .. 'wteam', id)
  if redis.call('ZCARD', B .. 'q:' .. team) == 0 then redis.call('ZREM', B .. 'heads', team) end
end
local function expire()
  redis.call('ZREMRANGEBYSCORE', B .. 'leases', '-inf', now)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', B .. 'deadline', '-inf', now)) do
    local team = redis.call('HGET', B .. 'wteam', id)
    if team then drop_waiter(id, team) else redis.call('ZREM', B .. 'deadline', id) end
  end
end
local function lease_to(id, lease)
  redis.call('ZADD', B .. 'leases', now + lease, id)
  touch('leases')
end
local function pump(capacity, lease)
  local granted = 0
  while redis.call('ZCARD', B .. 'leases') < capacity do
    local head = redis.call('ZRANGE', B .. 'heads', 0, 0, 'WITHSCORES')
    if #head == 0 then break end
    local team, s = head[1], tonumber(head[2])
    local first = redis.call('ZPOPMIN', B .. 'q:' .. team)
    if #first == 0 then
      redis.call('ZREM', B .. 'heads', team)
    else
      local id = first[1]
      redis.call('ZREM', B .. 'deadline', id)
      redis.call('HDEL', B .. 'wteam', id)
      local w = tonumber(redis.call('HGET', B .. 'weight', team) or '1')
      charge(team, s, w)
      if redis.call('ZCARD', B .. 'q:' .. team) > 0 then
        redis.call('ZADD', B .. 'heads', fmt(start(team)), team)
      else
        redis.call('ZREM', B .. 'heads', team)
      end
      lease_to(id, lease)
      redis.call('PUBLISH', CH, id)
      granted = granted + 1
    end
  end
  return granted
end
"""

# ARGV: id, team, weight, capacity, lease ms, wait ms -> {granted, in flight, waiting}
ACQUIRE = (
    _PRELUDE
    + """
local id, team, weight = ARGV[1], ARGV[2], tonumber(ARGV[3])
local capacity, lease, wait = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
expire()
pump(capacity, lease)
if redis.call('ZCARD', B .. 'heads') == 0 and redis.call('ZCARD', B .. 'leases') < capacity then
  charge(team, start(team), weight)
  lease_to(id, lease)
  return {1, redis.call('ZCARD', B .. 'leases'), 0}
end
redis.call('HSET', B .. 'weight', team, ARGV[3])
local seq = redis.call('INCR', B .. 'seq')
redis.call('ZADD', B .. 'q:' .. team, seq, id)
redis.call('ZADD', B .. 'deadline', now + wait, id)
redis.call('HSET', B .. 'wteam', id, team)
if not redis.call('ZSCORE', B .. 'heads', team) then
  redis.call('ZADD', B .. 'heads', fmt(start(team)), team)
end
for _, k in ipairs({'weight', 'seq', 'q:' .. team, 'deadline', 'wteam', 'heads'}) do touch(k) end
return {0, redis.call('ZCARD', B .. 'leases'), redis.call('ZCARD', B .. 'deadline')}
"""
)

# ARGV: id, capacity, lease ms -> slots granted to waiters
RELEASE = (
    _PRELUDE
    + """
redis.call('ZREM', B .. 'leases', ARGV[1])
expire()
return pump(tonumber(ARGV[2]), tonumber(ARGV[3]))
"""
)

# The slow safety net of a waiting replica. ARGV: id, team, capacity, lease ms
# -> 0 still waiting, 1 granted, 2 gone
POLL = (
    _PRELUDE
    + """
local id, team = ARGV[1], ARGV[2]
expire()
pump(tonumber(ARGV[3]), tonumber(ARGV[4]))
if redis.call('ZSCORE', B .. 'leases', id) then return 1 end
if redis.call('ZSCORE', B .. 'q:' .. team, id) then return 0 end
return 2
"""
)

# ARGV: id, team -> {0 left the queue | 1 was granted meanwhile | 2 gone, in flight, waiting}
LEAVE = (
    _PRELUDE
    + """
local id, team = ARGV[1], ARGV[2]
local status = 2
if redis.call('ZSCORE', B .. 'q:' .. team, id) then
  drop_waiter(id, team)
  status = 0
elseif redis.call('ZSCORE', B .. 'leases', id) then
  status = 1
end
return {status, redis.call('ZCARD', B .. 'leases'), redis.call('ZCARD', B .. 'deadline')}
"""
)

# ARGV: lease ms, slot ids... -> how many of them were no longer leased (lost)
RENEW = (
    _PRELUDE
    + """
local lease, lost = tonumber(ARGV[1]), 0
for i = 2, #ARGV do
  if redis.call('ZSCORE', B .. 'leases', ARGV[i]) then
    redis.call('ZADD', B .. 'leases', 'XX', now + lease, ARGV[i])
  else
    lost = lost + 1
  end
end
if lost < #ARGV - 1 then touch('leases') end
return lost
"""
)

# -> {in flight, waiting}
STATS = (
    _PRELUDE
    + """
expire()
return {redis.call('ZCARD', B .. 'leases'), redis.call('ZCARD', B .. 'deadline')}
"""
)
