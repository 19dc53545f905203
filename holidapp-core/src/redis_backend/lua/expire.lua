-- expire: carries out the status machine's decisions for leases found expired by `expired`.
-- Each is applied only if the lease is still the same one and still past its deadline (the
-- same token, still `in progress`, still filed under a deadline no later than now), so with many
-- callers each expired lease is handled exactly once, and a lease renewed meanwhile is left
-- alone. A job requeued goes into its priority level's returned set (ahead of the jobs submitted
-- after it); a job failed is
-- finished and filed in the expiry index like any finished job. Entries of jobs that are gone or
-- no longer `in progress` are taken out of the leased set.
--
-- KEYS[1]  {p}:{xx}:q:{queue}:leased     ZSET  job id -> lease deadline (ms)
-- KEYS[2]  {p}:{xx}:q:{queue}:levels     ZSET  priority levels other than 0 with jobs
-- KEYS[3]  {p}:{xx}:q:{queue}:failed     ZSET  job id -> submission number
-- KEYS[4]  {p}:{xx}:q:{queue}:expiry     ZSET  job id -> expires-at (ms)
-- KEYS[5]  {p}:{xx}:q:{queue}:wake       LIST
-- ARGV[1]  job key prefix ({p}:{xx}:job:)
-- ARGV[2]  now (ms since the epoch), or '' for Redis's clock
-- ARGV[3]  retention of jobs that fail (ms)
-- ARGV[4]  status of a leased job ('in progress')
-- ARGV[5]  status to requeue to ('submitted')
-- ARGV[6]  status to fail to ('failed')
-- ARGV[7]  wake-up list cap
-- ARGV[8]  the queue's key prefix ({p}:{xx}:q:{queue}:), under which the levels' lines are
-- then quadruples: job id, token it was leased under, 'requeue' or 'fail', the reason
-- (The queue's event stream, ARGV[8] .. 'events', gets one entry with the jobs' events, and its
-- counters, ARGV[8] .. 'counters', count the jobs failed in `failed`.)
-- Returns {requeued, failed}.

local now = now_ms(ARGV[2])
local finished_at = rfc3339(now)
local expires_at = string.format('%d', now + tonumber(ARGV[3]))
local requeued, failed = 0, 0
for i = 9, #ARGV, 4 do
  local id, token, decision, reason = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local key = ARGV[1] .. id
  local deadline = tonumber(redis.call('ZSCORE', KEYS[1], id))
  local status, current, seq, priority, kind =
    unpack(redis.call('HMGET', key, 'status', 'token', 'seq', 'priority', 'kind'))
  if not deadline or deadline > now then
    -- Renewed meanwhile, or already handled by another caller: nothing to do.
  elseif status ~= ARGV[4] then
    -- An entry left behind by a change made outside these scripts: drop it.
    redis.call('ZREM', KEYS[1], id)
  elseif current == token then
    redis.call('ZREM', KEYS[1], id)
    if decision == 'fail' then
      redis.call('HSET', key, 'status', ARGV[6], 'error', reason, 'finished_at', finished_at,
        'expires_at', expires_at)
      redis.call('ZADD', KEYS[3], seq, id)
      redis.call('ZADD', KEYS[4], expires_at, id)
      failed = failed + 1
      add_event(id, kind, ARGV[6], nil)
    else
      redis.call('HSET', key, 'status', ARGV[5], 'error', reason)
      make_ready(ARGV[8], KEYS[2], priority, seq, id)
      requeued = requeued + 1
      add_event(id, kind, ARGV[5], nil)
    end
  end
end
if failed > 0 then
  redis.call('HINCRBY', ARGV[8] .. 'counters', 'failed', failed)
end
if requeued > 0 then
  redis.call('RPUSH', KEYS[5], '1')
  redis.call('LTRIM', KEYS[5], 0, tonumber(ARGV[7]) - 1)
end
flush_events(ARGV[8] .. 'events')
return {requeued, failed}
