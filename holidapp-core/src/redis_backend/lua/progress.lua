-- progress: records a running job's last progress report under the current fencing token.
--
-- KEYS[1]  {p}:{xx}:job:{id}   HASH
-- ARGV[1]  fencing token of the caller's lease
-- ARGV[2]  status of a held lease ('in progress')
-- ARGV[3]  the report, as JSON
-- Returns 1, or 0 when the lease is lost (nothing changed).

local status, token = unpack(redis.call('HMGET', KEYS[1], 'status', 'token'))
if status ~= ARGV[2] or token ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'progress', ARGV[3])
return 1
