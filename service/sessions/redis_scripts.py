"""The Lua scripts of the Redis session store: each runs atomically in Redis.

Key layout: see redis.py. Scripts that read a session key built from an id in ARGV
(the owner quota) assume a single Redis, not a cluster.
"""

# Every time below is Redis's own clock (TIME), so that replicas whose clocks differ
# still agree on which sessions have expired.
NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: index, session, owner set ('' for none); ARGV: id, ttl_ms, max, record, max_owner
CREATE = (
    NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, tonumber(first[2]) - now}
end
if KEYS[3] ~= '' then
  local live, soonest = 0, nil
  for _, sid in ipairs(redis.call('SMEMBERS', KEYS[3])) do
    local left = redis.call('PTTL', ARGV[6] .. sid)
    if left < 0 then
      redis.call('SREM', KEYS[3], sid)
    else
      live = live + 1
      if soonest == nil or left < soonest then soonest = left end
    end
  end
  if tonumber(ARGV[5]) > 0 and live >= tonumber(ARGV[5]) then
    return {2, soonest}
  end
  redis.call('SADD', KEYS[3], ARGV[1])
end
redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[2])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return {1, tonumber(ARGV[2])}
"""
)

# KEYS: index, session, replays hash, replays order; ARGV: id, ttl_ms
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
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
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
# KEYS: index, session, replays hash, replays order
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

# KEYS: index, session, replays hash, replays order, owner set ('' for none); ARGV: id
DELETE = """
local deleted = redis.call('DEL', KEYS[2])
redis.call('DEL', KEYS[3], KEYS[4])
redis.call('ZREM', KEYS[1], ARGV[1])
if KEYS[5] ~= '' then redis.call('SREM', KEYS[5], ARGV[1]) end
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
