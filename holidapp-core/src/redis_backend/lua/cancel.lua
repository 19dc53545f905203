-- cancel: moves a job to `cancelled`, as one step, if it is still in the status the caller read
-- and decided on (compare-and-set; the status machine allows `submitted` and `in progress`). A
-- running job leaves the leased set, so its lease is no longer current: its worker's renewals
-- answer that the job was cancelled, and its outcome is refused. A waiting job leaves the
-- delayed set (and scheduled index) or its level's returned set; one never leased keeps its place
-- in its ready list, counted among the ids left there, for the lease that pops it to drop. The job is finished: filed in the
-- cancelled index and, for its retention, in the expiry index.
--
-- KEYS[1]  {p}:{xx}:job:{id}               HASH
-- KEYS[2]  {p}:{xx}:q:{queue}:leased       ZSET
-- KEYS[3]  {p}:{xx}:q:{queue}:delayed      ZSET
-- KEYS[4]  {p}:{xx}:q:{queue}:scheduled    ZSET
-- KEYS[5]  {p}:{xx}:q:{queue}:cancelled    ZSET  job id -> submission number
-- KEYS[6]  {p}:{xx}:q:{queue}:expiry       ZSET  job id -> expires-at (ms)
-- KEYS[7]  {p}:{xx}:q:{queue}:counters     HASH  deleted: ids left in the ready list
-- ARGV[1]  job id
-- ARGV[2]  now (ms since the epoch), or '' for Redis's clock
-- ARGV[3]  retention (ms)
-- ARGV[4]  the status the caller read and decided on
-- ARGV[5]  the status of a running job ('in progress')
-- ARGV[6]  the new status ('cancelled')
-- ARGV[7]  the queue's key prefix ({p}:{xx}:q:{queue}:), under which the levels' lines are
-- (The queue's event stream, ARGV[7] .. 'events', gets the job's event.)
-- Returns the job's fields after the change ({field, value, ...}), or {} when the job is not in
-- the status read any more (nothing changed).

local id = ARGV[1]
local status, seq, priority, kind =
  unpack(redis.call('HMGET', KEYS[1], 'status', 'seq', 'priority', 'kind'))
if not status or status ~= ARGV[4] then
  return {}
end
local now = now_ms(ARGV[2])
local expires_at = string.format('%d', now + tonumber(ARGV[3]))
if status == ARGV[5] then
  redis.call('ZREM', KEYS[2], id)
elseif redis.call('ZREM', KEYS[3], id) == 1 then
  redis.call('ZREM', KEYS[4], id)
elseif redis.call('ZREM', level_key(ARGV[7], 'returned', priority), id) == 0 then
  redis.call('HINCRBY', KEYS[7], 'deleted', 1)
end
redis.call('HSET', KEYS[1], 'status', ARGV[6], 'finished_at', rfc3339(now),
  'expires_at', expires_at)
redis.call('ZADD', KEYS[5], seq, id)
redis.call('ZADD', KEYS[6], expires_at, id)
add_event(id, kind, ARGV[6], nil)
flush_events(ARGV[7] .. 'events')
return redis.call('HGETALL', KEYS[1])
