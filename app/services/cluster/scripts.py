"""The Lua scripts the registry runs in Redis: each is one atomic step, timed by Redis's own clock.

Times are Redis's (`TIME`), never an instance's, so instances with skewed clocks agree on what expired.
Every key a script touches is passed in KEYS.
"""

from __future__ import annotations

_NOW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""

# KEYS[1] slots; ARGV[1] member, ARGV[2] ttl ms, ARGV[3] limit (0: none). 1 = reserved, 0 = full.
# Purging the expired members and adding the new one in one step is what makes the cap hold for a burst
# spread over every instance: no other command runs in between.
RESERVE = _NOW + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local limit = tonumber(ARGV[3])
if limit > 0 and redis.call('ZCARD', KEYS[1]) >= limit then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1
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

# The heartbeat. KEYS[1] slots, KEYS[2..n+1] the records of the n live sessions; ARGV[1] ttl ms,
# ARGV[2] n, ARGV[3..n+2] their ids, ARGV[n+3..2n+2] their records, then the reservations of sessions
# still starting. Members are added back if missing: after a Redis restart the owner republishes what
# it still serves.
REFRESH = _NOW + """
local ttl = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
for i = 1, n do
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[2 + i])
  redis.call('SET', KEYS[1 + i], ARGV[2 + n + i], 'PX', ttl)
end
for i = 3 + 2 * n, #ARGV do
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[i])
end
return n
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
