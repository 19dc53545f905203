-- delete: removes a job, its result and its place in its queue and in every index, as one step.
-- A job `in progress` is refused (its worker still holds a lease). A finished job past its
-- retention counts as already gone: it is removed, and the answer says there was no job.
--
-- KEYS[1]  {p}:{xx}:job:{id}               HASH
-- KEYS[2]  {p}:{xx}:result:{id}            STRING
-- KEYS[3]  {p}:{xx}:q:{queue}:ready        LIST
-- KEYS[4]  {p}:{xx}:q:{queue}:delayed      ZSET
-- KEYS[5]  {p}:{xx}:q:{queue}:returned     ZSET
-- KEYS[6]  {p}:{xx}:q:{queue}:expiry       ZSET
-- KEYS[7]  {p}:{xx}:q:{queue}:complete     ZSET
-- KEYS[8]  {p}:{xx}:q:{queue}:failed       ZSET
-- ARGV[1]  job id
-- ARGV[2]  now (ms since the epoch)
-- ARGV[3]  status that refuses deletion ('in progress')
-- ARGV[4]  status of a queued job ('submitted')
-- Returns 1 (deleted), 0 (no such job) or -1 (in progress: refused).

local id = ARGV[1]
local status, expires_at = unpack(redis.call('HMGET', KEYS[1], 'status', 'expires_at'))
if status == ARGV[3] then
  return -1
end
if status == ARGV[4] then
  -- Waiting for a retry, back from a lease, or (the only O(n) case) never leased yet.
  if redis.call('ZREM', KEYS[4], id) == 0 and redis.call('ZREM', KEYS[5], id) == 0 then
    redis.call('LREM', KEYS[3], 1, id)
  end
end
redis.call('DEL', KEYS[1], KEYS[2])
for i = 6, 8 do
  redis.call('ZREM', KEYS[i], id)
end
if not status then
  return 0
end
if expires_at and tonumber(expires_at) <= tonumber(ARGV[2]) then
  return 0
end
return 1
