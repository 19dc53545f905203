-- retry: gives a failed job a fresh set of attempts, as one step, if it is still in the status the
-- caller read and decided on (compare-and-set; the status machine allows `failed` only). The job
-- leaves the failed index and the expiry index, loses its error, finish time, retention and
-- progress, and becomes leasable at once (its priority level's returned set, ahead of the jobs
-- submitted after it); an idle worker is woken. A failed job was leased before it failed, so it
-- holds no place in a ready list.
--
-- KEYS[1]  {p}:{xx}:job:{id}               HASH
-- KEYS[2]  {p}:{xx}:q:{queue}:failed       ZSET  job id -> submission number
-- KEYS[3]  {p}:{xx}:q:{queue}:expiry       ZSET  job id -> expires-at (ms)
-- KEYS[4]  {p}:{xx}:q:{queue}:levels       ZSET  priority levels other than 0 with jobs
-- KEYS[5]  {p}:{xx}:q:{queue}:wake         LIST
-- ARGV[1]  job id
-- ARGV[2]  the status the caller read and decided on ('failed')
-- ARGV[3]  the new status ('submitted')
-- ARGV[4]  the new attempt count ('0')
-- ARGV[5]  wake-up list cap
-- ARGV[6]  the queue's key prefix ({p}:{xx}:q:{queue}:), under which the levels' lines are
-- (The queue's event stream, ARGV[6] .. 'events', gets the job's event.)
-- Returns the job's fields after the change ({field, value, ...}), or {} when the job is not in
-- the status read any more (nothing changed).

local id = ARGV[1]
local status, seq, priority, kind =
  unpack(redis.call('HMGET', KEYS[1], 'status', 'seq', 'priority', 'kind'))
if not status or status ~= ARGV[2] then
  return {}
end
redis.call('HSET', KEYS[1], 'status', ARGV[3], 'attempts', ARGV[4])
redis.call('HDEL', KEYS[1], 'error', 'finished_at', 'expires_at', 'progress')
redis.call('ZREM', KEYS[2], id)
redis.call('ZREM', KEYS[3], id)
make_ready(ARGV[6], KEYS[4], priority, seq, id)
redis.call('RPUSH', KEYS[5], '1')
redis.call('LTRIM', KEYS[5], 0, tonumber(ARGV[5]) - 1)
add_event(id, kind, ARGV[3], nil)
flush_events(ARGV[6] .. 'events')
return redis.call('HGETALL', KEYS[1])
