"""The Lua scripts of the Redis session store: each runs atomically in Redis.

Key layout: see redis_keys.py. Every script declares every key it touches, and all the
keys of one call share a hash slot (Redis Cluster runs it on one node).
"""

# Every time below is Redis's own clock (TIME), so that replicas whose clocks differ
# still agree on which sessions have expired.
NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: partition index, session; ARGV: id, ttl_ms, partition cap, record
CREATE = (
    NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, first[2] and (tonumber(first[2]) - now) or 1000}
end
redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[2])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return {1, tonumber(ARGV[2])}
"""
)

# One API key's quota, in its own slot. KEYS: the key's sessions (id -> a known expiry)
# ARGV: quota, ttl_ms, new id, then (id, ms left) for each id whose known expiry had
# passed, as the caller found it in its partition (-2: gone). Gone ids leave, live ones get
# their expiry; then the new id is added, unless the live ones fill the quota.
RESERVE = (
    NOW
    + """
for i = 4, #ARGV, 2 do
  local left = tonumber(ARGV[i + 1])
  if left < 0 then
    redis.call('ZREM', KEYS[1], ARGV[i])
  else
    redis.call('ZADD', KEYS[1], 'XX', now + left, ARGV[i])
  end
end
redis.call('ZREM', KEYS[1], ARGV[3])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, math.max(1, tonumber(first[2]) - now)}
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
return {1, 0}
"""
)

# KEYS: the key's sessions. The ids whose known expiry has passed, to look up in their
# partitions (a session's expiry moves on at each access without writing to this set)
STALE = (
    NOW
    + """
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
"""
)

# KEYS: partition index; the live sessions in it (no purge: /readyz and /metrics read it)
COUNT = (
    NOW
    + """
return redis.call('ZCOUNT', KEYS[1], now + 1, '+inf')
"""
)

# KEYS: partition index, session, replays hash, replays order; ARGV: id, ttl_ms
# (a session from before the partitions joins its partition's index here)
TOUCH = (
    NOW
    + """
local data = redis.call('GET', KEYS[2])
if not data then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return false
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[3], ARGV[2])
redis.call('PEXPIRE', KEYS[4], ARGV[2])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return data
"""
)

# The compare-and-set: the record is replaced only if its revision is still the one
# loaded; the Idempotency-Key's answer (if any) is written in the same script, so a
# change and the answer that a retry will get are stored together or not at all.
# Answers are stored as base.py's Replay encodes them: fingerprint (32 bytes), status
# (2 bytes), body; a marker is the fingerprint alone. Beyond the byte budget (bodies
# counted), the oldest answers are replaced by their markers; the newest fits (a
# marker if its answer alone is over: redis.py sends only the marker then).
# KEYS: partition index, session, replays hash, replays order
# ARGV: id, revision (8 bytes), record, ttl_ms, revision offset, key ('' none), answer,
# keys kept, answer bytes kept
SAVE = (
    NOW
    + """
if redis.call('GETRANGE', KEYS[2], ARGV[5], ARGV[5] + 7) ~= ARGV[2] then
  return 0
end
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[1])
if ARGV[6] ~= '' then
  if redis.call('HEXISTS', KEYS[3], ARGV[6]) == 1 then
    redis.call('LREM', KEYS[4], 0, ARGV[6])
  end
  redis.call('HSET', KEYS[3], ARGV[6], ARGV[7])
  redis.call('RPUSH', KEYS[4], ARGV[6])
  while redis.call('LLEN', KEYS[4]) > tonumber(ARGV[8]) do
    redis.call('HDEL', KEYS[3], redis.call('LPOP', KEYS[4]))
  end
  local order, sizes = redis.call('LRANGE', KEYS[4], 0, -1), {}
  local over = -tonumber(ARGV[9])
  for i, key in ipairs(order) do
    sizes[i] = math.max(0, redis.call('HSTRLEN', KEYS[3], key) - 34)
    over = over + sizes[i]
  end
  for i, key in ipairs(order) do
    if over <= 0 then break end
    if sizes[i] > 0 then
      local fingerprint = string.sub(redis.call('HGET', KEYS[3], key), 1, 32)
      redis.call('HSET', KEYS[3], key, fingerprint)
      over = over - sizes[i]
    end
  end
end
redis.call('PEXPIRE', KEYS[3], ARGV[4])
redis.call('PEXPIRE', KEYS[4], ARGV[4])
return 1
"""
)

# KEYS: partition index, session, replays hash, replays order; ARGV: id
DELETE = """
local deleted = redis.call('DEL', KEYS[2])
redis.call('DEL', KEYS[3], KEYS[4])
redis.call('ZREM', KEYS[1], ARGV[1])
return deleted
"""

UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
