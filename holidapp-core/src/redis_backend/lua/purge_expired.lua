-- purge_expired: removes up to LIMIT finished jobs of one queue past their retention from every
-- index, with their hash and result.
--
-- KEYS[1]  {p}:{xx}:q:{queue}:expiry      ZSET  job id -> expires-at (ms)
-- KEYS[2]  {p}:{xx}:q:{queue}:complete    ZSET
-- KEYS[3]  {p}:{xx}:q:{queue}:failed      ZSET
-- ARGV[1]  job key prefix ({p}:{xx}:job:)
-- ARGV[2]  result key prefix ({p}:{xx}:result:)
-- ARGV[3]  now (ms since the epoch)
-- ARGV[4]  most jobs to purge in this call
-- Returns how many jobs were purged.

local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[3], 'LIMIT', 0, tonumber(ARGV[4]))
for _, id in ipairs(ids) do
  redis.call('DEL', ARGV[1] .. id, ARGV[2] .. id)
end
if #ids > 0 then
  for i = 1, 3 do
    redis.call('ZREM', KEYS[i], unpack(ids))
  end
end
return #ids
