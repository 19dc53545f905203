-- lease: hands up to MAX ready jobs to one worker. First moves delayed retries whose time has come
-- to the back of the ready queue; then, for each job popped from the front: checks it is still
-- `submitted` (compare-and-set), marks it `in progress` with the worker, start time, a fresh
-- fencing token, the lease deadline and one more attempt, and files it under its deadline.
-- When nothing is ready, the wake-up list is emptied (its tokens would only wake workers for
-- nothing).
--
-- KEYS[1]  {prefix}:queue:ready          LIST
-- KEYS[2]  {prefix}:queue:delayed        ZSET  job id -> ready-at (ms)
-- KEYS[3]  {prefix}:queue:leased         ZSET  job id -> lease deadline (ms)
-- KEYS[4]  {prefix}:index:submitted      ZSET
-- KEYS[5]  {prefix}:index:in_progress    ZSET
-- KEYS[6]  {prefix}:queue:token          STRING  fencing token counter
-- KEYS[7]  {prefix}:queue:wake           LIST
-- ARGV[1]  job key prefix ({prefix}:job:)
-- ARGV[2]  now (ms since the epoch)
-- ARGV[3]  lease deadline (ms)
-- ARGV[4]  worker identity
-- ARGV[5]  now, RFC 3339 (started_at)
-- ARGV[6]  lease deadline, RFC 3339
-- ARGV[7]  most jobs to lease
-- ARGV[8]  expected status ('submitted')
-- ARGV[9]  new status ('in progress')
-- ARGV[10] most delayed jobs to promote in this call
-- Returns a list with, per leased job, {id, token, {field, value, ...}} (the job's hash).

local job_prefix = ARGV[1]
local now = ARGV[2]
local deadline = ARGV[3]
local max = tonumber(ARGV[7])
local from, to = ARGV[8], ARGV[9]

local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[10]))
if #due > 0 then
  redis.call('ZREM', KEYS[2], unpack(due))
  redis.call('RPUSH', KEYS[1], unpack(due))
end

local leased = {}
while #leased < max do
  local id = redis.call('LPOP', KEYS[1])
  if not id then
    break
  end
  local key = job_prefix .. id
  local status, seq = unpack(redis.call('HMGET', key, 'status', 'seq'))
  -- Anything else is an id left behind by a change made outside these scripts: drop it.
  if status == from then
    local token = redis.call('INCR', KEYS[6])
    redis.call('HSET', key, 'status', to, 'worker', ARGV[4], 'started_at', ARGV[5],
      'token', token, 'lease_deadline', ARGV[6])
    redis.call('HINCRBY', key, 'attempts', 1)
    redis.call('ZADD', KEYS[3], deadline, id)
    redis.call('ZREM', KEYS[4], id)
    redis.call('ZADD', KEYS[5], seq, id)
    leased[#leased + 1] = {id, token, redis.call('HGETALL', key)}
  end
end

if #leased == 0 then
  redis.call('DEL', KEYS[7])
end
return leased
