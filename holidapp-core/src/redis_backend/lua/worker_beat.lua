-- worker_beat: records a worker's heartbeat in the worker registry, and drops dead entries.
--
-- KEYS[1]  {p}:{w}:workers            HASH  worker id -> its info, as JSON
-- KEYS[2]  {p}:{w}:workers:deadlines  ZSET  worker id by when its entry dies (ms)
-- KEYS[3]  {p}:{w}:workers:seen       HASH  worker id -> when it last beat (ms)
-- ARGV[1]  the time in ms, or '' for Redis's own clock
-- ARGV[2]  the worker's id
-- ARGV[3]  its info, as JSON
-- ARGV[4]  how long the entry lives without another beat (ms)
-- ARGV[5]  the most live entries the registry holds
-- Returns 1, or 0 when the registry is full and the worker is not in it (nothing changed).

local now = now_ms(ARGV[1])
-- At most 100 dead entries per beat: a beat stays cheap, and every live worker beats.
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 100)
if #dead > 0 then
  redis.call('HDEL', KEYS[1], unpack(dead))
  redis.call('HDEL', KEYS[3], unpack(dead))
  redis.call('ZREM', KEYS[2], unpack(dead))
end
if not redis.call('ZSCORE', KEYS[2], ARGV[2])
    and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[2], now)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[2])
return 1
