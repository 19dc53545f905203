-- complete: stores a job's result and marks it `complete`, as one step, only under the current
-- fencing token. The job and its result then expire after the retention period, and the job is
-- filed in the expiry index so purges can drop it from the listing indexes.
--
-- KEYS[1]  {prefix}:job:{id}             HASH
-- KEYS[2]  {prefix}:result:{id}          STRING
-- KEYS[3]  {prefix}:queue:leased         ZSET
-- KEYS[4]  {prefix}:index:in_progress    ZSET
-- KEYS[5]  {prefix}:index:complete       ZSET
-- KEYS[6]  {prefix}:index:expiry         ZSET  job id -> expires-at (ms)
-- ARGV[1]  job id
-- ARGV[2]  fencing token of the caller's lease
-- ARGV[3]  expected status ('in progress')
-- ARGV[4]  new status ('complete')
-- ARGV[5]  now, RFC 3339 (finished_at)
-- ARGV[6]  expires-at (ms since the epoch)
-- ARGV[7]  retention (ms)
-- ARGV[8]  the result bytes
-- Returns {'ok', {field, value, ...}} (the finished job's hash) or {'lost'}.

local id = ARGV[1]
local status, token, seq = unpack(redis.call('HMGET', KEYS[1], 'status', 'token', 'seq'))
if status ~= ARGV[3] or token ~= ARGV[2] then
  return {'lost'}
end
redis.call('SET', KEYS[2], ARGV[8], 'PX', ARGV[7])
redis.call('HSET', KEYS[1], 'status', ARGV[4], 'finished_at', ARGV[5])
redis.call('HDEL', KEYS[1], 'token', 'lease_deadline', 'error')
redis.call('PEXPIRE', KEYS[1], ARGV[7])
redis.call('ZREM', KEYS[3], id)
redis.call('ZREM', KEYS[4], id)
redis.call('ZADD', KEYS[5], seq, id)
redis.call('ZADD', KEYS[6], ARGV[6], id)
return {'ok', redis.call('HGETALL', KEYS[1])}
