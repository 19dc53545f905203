-- requeue_expired: handles up to LIMIT leases whose deadline has passed. Each is taken out of the
-- leased set inside this script, so with many callers each expired lease is handled exactly
-- once. A job on its last allowed attempt becomes `failed` with the reason (and is filed in the
-- expiry index like any finished job); any other goes back to the queue as `submitted`, into the returned set (which goes
-- before jobs never leased).
--
-- KEYS[1]  {prefix}:queue:leased         ZSET  job id -> lease deadline (ms)
-- KEYS[2]  {prefix}:queue:returned       ZSET  job id -> submission number
-- KEYS[3]  {prefix}:index:failed         ZSET  job id -> submission number
-- KEYS[4]  {prefix}:index:expiry         ZSET  job id -> expires-at (ms)
-- KEYS[5]  {prefix}:queue:wake           LIST
-- ARGV[1]  job key prefix ({prefix}:job:)
-- ARGV[2]  now (ms since the epoch)
-- ARGV[3]  attempt limit
-- ARGV[4]  most leases to handle in this call
-- ARGV[5]  now, RFC 3339 (finished_at of jobs that fail)
-- ARGV[6]  expires-at of jobs that fail (ms)
-- ARGV[7]  status of a leased job ('in progress')
-- ARGV[8]  status to requeue to ('submitted')
-- ARGV[9]  status to fail to ('failed')
-- ARGV[10] wake-up list cap
-- Returns {requeued, failed, examined}.

local max_attempts = tonumber(ARGV[3])
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[4]))
local requeued, failed = 0, 0
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[1], id)
  local key = ARGV[1] .. id
  local status, seq, attempts = unpack(redis.call('HMGET', key, 'status', 'seq', 'attempts'))
  if status == ARGV[7] then
    attempts = tonumber(attempts) or 0
    local reason = 'lease expired on attempt ' .. attempts .. ' of ' .. max_attempts
    redis.call('HSET', key, 'error', reason)
    if attempts >= max_attempts then
      redis.call('HSET', key, 'status', ARGV[9], 'finished_at', ARGV[5])
      redis.call('ZADD', KEYS[3], seq, id)
      redis.call('ZADD', KEYS[4], ARGV[6], id)
      failed = failed + 1
    else
      redis.call('HSET', key, 'status', ARGV[8])
      redis.call('ZADD', KEYS[2], seq, id)
      requeued = requeued + 1
    end
  end
end
if requeued > 0 then
  redis.call('RPUSH', KEYS[5], '1')
  redis.call('LTRIM', KEYS[5], 0, tonumber(ARGV[10]) - 1)
end
return {requeued, failed, #expired}
