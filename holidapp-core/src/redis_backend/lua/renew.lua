-- renew: extends leases of one queue that are still held, each checked on its own: the job must
-- be `in progress` under the caller's fencing token. A lost lease does not stop the others.
--
-- KEYS[1]  {p}:{xx}:q:{queue}:leased   ZSET  job id -> lease deadline (ms)
-- ARGV[1]  job key prefix ({p}:{xx}:job:)
-- ARGV[2]  new deadline (ms since the epoch)
-- ARGV[3]  new deadline, RFC 3339
-- ARGV[4]  status a held lease has ('in progress')
-- then pairs: job id, token
-- Returns a list of 1 (renewed) or 0 (lease lost), one per pair.

local held = {}
for i = 5, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local key = ARGV[1] .. id
  local status, current = unpack(redis.call('HMGET', key, 'status', 'token'))
  if status == ARGV[4] and current == token then
    redis.call('HSET', key, 'lease_deadline', ARGV[3])
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    held[#held + 1] = 1
  else
    held[#held + 1] = 0
  end
end
return held
