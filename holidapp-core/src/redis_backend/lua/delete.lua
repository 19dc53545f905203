-- delete: removes a job, its result and its place in its queue and in every index, as one step,
-- in constant time. A job `in progress` is refused (its worker still holds a lease). A finished
-- job past its retention counts as already gone: it is removed, and the answer says there was no
-- job. A job never leased keeps its place in its ready list, which only a scan could find: its
-- hash is replaced by remains (its status 'deleted' and its submission number), which every read
-- treats as gone, and which the lease that pops it drops; the queue counts them to keep its
-- depth exact.
--
-- KEYS[1]  {p}:{xx}:job:{id}               HASH
-- KEYS[2]  {p}:{xx}:result:{id}            STRING
-- KEYS[3]  {p}:{xx}:q:{queue}:delayed      ZSET
-- KEYS[4]  {p}:{xx}:q:{queue}:scheduled    ZSET
-- KEYS[5]  {p}:{xx}:q:{queue}:expiry       ZSET
-- KEYS[6]  {p}:{xx}:q:{queue}:complete     ZSET
-- KEYS[7]  {p}:{xx}:q:{queue}:failed       ZSET
-- KEYS[8]  {p}:{xx}:q:{queue}:cancelled    ZSET
-- KEYS[9]  {p}:{xx}:q:{queue}:counters     HASH  deleted, result_bytes
-- ARGV[1]  job id
-- ARGV[2]  now (ms since the epoch), or '' for Redis's clock
-- ARGV[3]  status that refuses deletion ('in progress')
-- ARGV[4]  status of a queued job ('submitted')
-- ARGV[5]  the status of a deleted job's remains ('deleted')
-- ARGV[6]  the queue's key prefix ({p}:{xx}:q:{queue}:), under which the levels' lines are
-- Returns 1 (deleted), 0 (no such job) or -1 (in progress: refused).

local id = ARGV[1]
local status, expires_at, seq, priority =
  unpack(redis.call('HMGET', KEYS[1], 'status', 'expires_at', 'seq', 'priority'))
if status == ARGV[3] then
  return -1
end
if not status or status == ARGV[5] then
  return 0
end
if status == ARGV[4] then
  -- Waiting for its time, back from a lease or due, or (left in place) never leased yet.
  local delayed = redis.call('ZREM', KEYS[3], id) == 1
  if delayed then
    redis.call('ZREM', KEYS[4], id)
  end
  if not delayed
    and redis.call('ZREM', level_key(ARGV[6], 'returned', priority), id) == 0 then
    redis.call('DEL', KEYS[1])
    redis.call('HSET', KEYS[1], 'status', ARGV[5], 'seq', seq)
    redis.call('HINCRBY', KEYS[9], 'deleted', 1)
    return 1
  end
end
local bytes = redis.call('STRLEN', KEYS[2])
if bytes > 0 then
  redis.call('HINCRBY', KEYS[9], 'result_bytes', -bytes)
end
redis.call('UNLINK', KEYS[1], KEYS[2])
for i = 5, 8 do
  redis.call('ZREM', KEYS[i], id)
end
if expires_at and tonumber(expires_at) <= now_ms(ARGV[2]) then
  return 0
end
return 1
