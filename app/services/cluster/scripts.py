"""The Lua scripts the registry runs in Redis: each is one atomic step, timed by Redis's own clock.

Times are Redis's (`TIME`), never an instance's, so instances with skewed clocks agree on what expired.
Every key a script touches is passed in KEYS.
"""

from __future__ import annotations

_NOW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""

# The registry's generation (SPEC §10, "after Redis loses data"). Every script that grants something (a slot,
# a write lock) or republishes starts with KEYS[1] generation, KEYS[2] recovery marker, ARGV[1] ttl ms,
# ARGV[2] a new generation id of the caller's. A missing generation key means the data is gone (FLUSHALL, a
# restart or failover to an empty replica; a brand-new Redis looks the same): a new generation starts, and
# the recovery marker, expiring after REGISTRY_TTL, refuses grants until every live instance has heartbeat
# (within REGISTRY_TTL by the registry's own contract) and so put its share of the count back.
_GENERATION = """
local ttl = tonumber(ARGV[1])
local generation = redis.call('GET', KEYS[1])
local lost = not generation
if lost then
  generation = ARGV[2]
  redis.call('SET', KEYS[1], generation)
  redis.call('SET', KEYS[2], generation, 'PX', ttl)
end
local recovering = math.max(redis.call('PTTL', KEYS[2]), 0)
"""

# KEYS[3] slots; ARGV[3] the generation the caller last republished under ('' if none), ARGV[4] member,
# ARGV[5] limit (0: none). Returns {code, generation, ms of recovery left}: 1 reserved, 0 full,
# -1 republish first (the data was lost, or the caller has not republished since a loss), -2 recovering.
# Purging the expired members and adding the new one in one step is what makes the cap hold for a burst
# spread over every instance: no other command runs in between.
RESERVE = _NOW + _GENERATION + """
if lost or generation ~= ARGV[3] then
  return {-1, generation, recovering}
end
local limit = tonumber(ARGV[5])
if limit > 0 and recovering > 0 then
  return {-2, generation, recovering}
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if limit > 0 and redis.call('ZCARD', KEYS[3]) >= limit then
  return {0, generation, 0}
end
redis.call('ZADD', KEYS[3], now + ttl, ARGV[4])
return {1, generation, 0}
"""

# KEYS[1] slots, KEYS[2] the record; ARGV[1] ttl ms, ARGV[2] the reservation, ARGV[3] session id,
# ARGV[4] the record. The reservation becomes the session in one step: the count never dips or doubles.
PUBLISH = _NOW + """
local ttl = tonumber(ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[3])
redis.call('SET', KEYS[2], ARGV[4], 'PX', ttl)
return 1
"""

# The heartbeat. KEYS[3] slots, KEYS[4..n+3] the records of the n live sessions; ARGV[3] n, ARGV[4..n+3]
# their ids, ARGV[n+4..2n+3] their records, then the reservations of sessions still starting. Members are
# added back if missing: after a loss the owner republishes all it holds, under the generation returned.
REFRESH = _NOW + _GENERATION + """
local n = tonumber(ARGV[3])
for i = 1, n do
  redis.call('ZADD', KEYS[3], now + ttl, ARGV[3 + i])
  redis.call('SET', KEYS[3 + i], ARGV[3 + n + i], 'PX', ttl)
end
for i = 4 + 2 * n, #ARGV do
  redis.call('ZADD', KEYS[3], now + ttl, ARGV[i])
end
return generation
"""

# Write mode's lock. KEYS[3] lock; ARGV[3] holder token. 1 = taken, 0 = held by another, -1 = recovering:
# a holder whose lock Redis lost takes it back on its next heartbeat (RENEW), and nobody may take it first.
ACQUIRE = _GENERATION + """
if recovering > 0 then
  return -1
end
if redis.call('SET', KEYS[3], ARGV[3], 'NX', 'PX', ttl) then
  return 1
end
return 0
"""

# The write lock's holder keeps it: KEYS[1] lock; ARGV[1] holder token, ARGV[2] ttl ms. 1 = still ours
# (also when Redis lost the key, in a restart: the holder still writes, so it takes it back), 0 = lost.
RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

# KEYS[1] lock; ARGV[1] holder token. Deletes it only if it is still this holder's.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
