-- purge_expired: removes up to LIMIT finished jobs of one queue past their retention from every
-- index, with their hash and result, and takes their results' bytes off the queue's count. (A
-- job cancelled before any lease may leave its id in the ready list; the lease that pops it
-- finds no hash and counts it as one of the ids left there.)
--
-- KEYS[1]  {p}:{xx}:q:{queue}:expiry      ZSET  job id -> expires-at (ms)
-- KEYS[2]  {p}:{xx}:q:{queue}:complete    ZSET
-- KEYS[3]  {p}:{xx}:q:{queue}:failed      ZSET
-- KEYS[4]  {p}:{xx}:q:{queue}:cancelled   ZSET
-- KEYS[5]  {p}:{xx}:q:{queue}:counters    HASH  result_bytes
-- ARGV[1]  job key prefix ({p}:{xx}:job:)
-- ARGV[2]  result key prefix ({p}:{xx}:result:)
-- ARGV[3]  now (ms since the epoch), or '' for Redis's clock
-- ARGV[4]  most jobs to purge in this call
-- Returns how many jobs were purged.

local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms(ARGV[3]), 'LIMIT', 0,
  tonumber(ARGV[4]))
local bytes = 0
for _, id in ipairs(ids) do
  local result = ARGV[2] .. id
  bytes = bytes + redis.call('STRLEN', result)
  redis.call('UNLINK', ARGV[1] .. id, result)
end
if #ids > 0 then
  for i = 1, 4 do
    redis.call('ZREM', KEYS[i], unpack(ids))
  end
  if bytes > 0 then
    redis.call('HINCRBY', KEYS[5], 'result_bytes', -bytes)
  end
end
return #ids
