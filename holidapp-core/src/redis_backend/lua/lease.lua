-- lease: hands up to MAX ready jobs of one queue to one worker, oldest submission first. First
-- makes delayed retries whose time has come ready again (into the returned set). Then takes jobs
-- back from a lease (the returned set, lowest submission number first) before jobs never leased
-- (the head of the ready list): each of the former was submitted before each of the latter. For
-- each job taken: checks it is still `submitted` (compare-and-set), marks it `in progress` with
-- the worker, start time, a fresh fencing token, the lease deadline and one more attempt (the
-- move the status machine decides for a lease), and files it under its deadline (the leased set
-- is also the index of `in progress` jobs). When nothing is ready, the wake-up list is emptied
-- (its tokens would only wake workers for nothing).
--
-- KEYS[1]  {p}:{xx}:q:{queue}:ready      LIST  job ids never leased, oldest first
-- KEYS[2]  {p}:{xx}:q:{queue}:returned   ZSET  job id -> submission number
-- KEYS[3]  {p}:{xx}:q:{queue}:delayed    ZSET  job id -> ready-at (ms)
-- KEYS[4]  {p}:{xx}:q:{queue}:leased     ZSET  job id -> lease deadline (ms)
-- KEYS[5]  {p}:{xx}:token                STRING  fencing token counter
-- KEYS[6]  {p}:{xx}:q:{queue}:wake       LIST
-- ARGV[1]  job key prefix ({p}:{xx}:job:)
-- ARGV[2]  now (ms since the epoch)
-- ARGV[3]  lease deadline (ms)
-- ARGV[4]  worker identity
-- ARGV[5]  now, RFC 3339 (started_at)
-- ARGV[6]  lease deadline, RFC 3339
-- ARGV[7]  most jobs to lease
-- ARGV[8]  expected status ('submitted')
-- ARGV[9]  new status ('in progress')
-- ARGV[10] most delayed jobs to promote in this call
-- ARGV[11..] the job fields to answer (they include `status` and `attempts`)
-- Returns a list with, per leased job, {id, token, {value, ...}}: the values of those fields as
-- they were before this lease, nil where the hash lacks one (the caller knows what the lease
-- changed). Values only, in the caller's order: no field names to send, scan or parse.

local job_prefix = ARGV[1]
local now = ARGV[2]
local deadline = ARGV[3]
local max = tonumber(ARGV[7])
local from, to = ARGV[8], ARGV[9]
local read, status_at, attempts_at = {}, nil, nil
for i = 11, #ARGV do
  read[#read + 1] = ARGV[i]
  if ARGV[i] == 'status' then
    status_at = #read
  elseif ARGV[i] == 'attempts' then
    attempts_at = #read
  end
end

local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, tonumber(ARGV[10]))
if #due > 0 then
  redis.call('ZREM', KEYS[3], unpack(due))
  local scored = {}
  for _, id in ipairs(due) do
    local seq = redis.call('HGET', job_prefix .. id, 'seq')
    if seq then
      scored[#scored + 1] = seq
      scored[#scored + 1] = id
    end
  end
  if #scored > 0 then
    redis.call('ZADD', KEYS[2], unpack(scored))
  end
end

local ids = {}
local back = redis.call('ZPOPMIN', KEYS[2], max)
for i = 1, #back, 2 do
  ids[#ids + 1] = back[i]
end
if #ids < max then
  local fresh = redis.call('LPOP', KEYS[1], max - #ids)
  if fresh then
    for _, id in ipairs(fresh) do
      ids[#ids + 1] = id
    end
  end
end
if #ids == 0 then
  redis.call('DEL', KEYS[6])
  return {}
end

-- One counter step for the whole batch: each lease still gets a token never used before.
local token = tonumber(redis.call('INCRBY', KEYS[5], #ids)) - #ids
local leased, scored = {}, {}
for _, id in ipairs(ids) do
  local key = job_prefix .. id
  local values = redis.call('HMGET', key, unpack(read))
  local status = values[status_at]
  local attempts = tonumber(values[attempts_at])
  -- Anything else is an id left behind by a change made outside these scripts: drop it.
  if status == from then
    token = token + 1
    -- Integers formatted with '%d': a bare number would go through the much slower '%.14g'.
    redis.call('HSET', key, 'status', to, 'worker', ARGV[4], 'started_at', ARGV[5],
      'token', string.format('%d', token), 'lease_deadline', ARGV[6],
      'attempts', string.format('%d', (attempts or 0) + 1))
    scored[#scored + 1] = deadline
    scored[#scored + 1] = id
    leased[#leased + 1] = {id, token, values}
  end
end
if #leased > 0 then
  redis.call('ZADD', KEYS[4], unpack(scored))
end
return leased
