-- worker_leave: removes a worker that stopped from the worker registry.
--
-- KEYS[1]  {p}:{w}:workers            HASH  worker id -> its info, as JSON
-- KEYS[2]  {p}:{w}:workers:deadlines  ZSET  worker id by when its entry dies (ms)
-- KEYS[3]  {p}:{w}:workers:seen       HASH  worker id -> when it last beat (ms)
-- ARGV[1]  the worker's id
-- Returns 1.

redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
