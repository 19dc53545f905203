-- fail: records a failed attempt under the current fencing token. The status machine (in the
-- caller) has decided the move; this script carries it out: either back to `submitted`, leasable
-- again after a delay (the delayed set, and the scheduled index), or `failed` for good, finished and filed in the expiry
-- index like a complete job.
--
-- KEYS[1]  {p}:{xx}:job:{id}               HASH
-- KEYS[2]  {p}:{xx}:q:{queue}:leased       ZSET  (also the index of `in progress` jobs)
-- KEYS[3]  {p}:{xx}:q:{queue}:failed       ZSET  job id -> submission number
-- KEYS[4]  {p}:{xx}:q:{queue}:delayed      ZSET  job id -> ready-at (ms)
-- KEYS[5]  {p}:{xx}:q:{queue}:expiry       ZSET  job id -> expires-at (ms)
-- KEYS[6]  {p}:{xx}:q:{queue}:scheduled    ZSET  job id -> submission number (delayed jobs)
-- KEYS[7]  {p}:{xx}:q:{queue}:events       STREAM one entry with the job's event
-- KEYS[8]  {p}:{xx}:q:{queue}:counters     HASH  failed: jobs failed for good, ever
-- ARGV[1]  job id
-- ARGV[2]  fencing token of the caller's lease
-- ARGV[3]  expected status ('in progress')
-- ARGV[4]  new status ('submitted' to retry, 'failed' to give up)
-- ARGV[5]  'retry' or 'give_up'
-- ARGV[6]  the reason
-- ARGV[7]  retry: the delay before it is leasable again (ms); give up: retention (ms)
-- ARGV[8]  now (ms since the epoch), or '' for Redis's clock
-- Returns {1, now, progress}: progress is the job's last progress report (nil for none), or {0}
-- when the lease is lost (nothing changed).

local id = ARGV[1]
local status, token, seq, progress, kind, worker = unpack(redis.call('HMGET', KEYS[1], 'status',
  'token', 'seq', 'progress', 'kind', 'worker'))
if status ~= ARGV[3] or token ~= ARGV[2] then
  return {0}
end
local now = now_ms(ARGV[8])
local at = string.format('%d', now + tonumber(ARGV[7]))
redis.call('HSET', KEYS[1], 'status', ARGV[4], 'error', ARGV[6])
redis.call('ZREM', KEYS[2], id)
if ARGV[5] == 'retry' then
  redis.call('ZADD', KEYS[4], at, id)
  redis.call('ZADD', KEYS[6], seq, id)
else
  redis.call('ZADD', KEYS[3], seq, id)
  redis.call('HSET', KEYS[1], 'finished_at', rfc3339(now), 'expires_at', at)
  redis.call('ZADD', KEYS[5], at, id)
  redis.call('HINCRBY', KEYS[8], 'failed', 1)
end
add_event(id, kind, ARGV[4], worker)
flush_events(KEYS[7])
return {1, now, progress}
