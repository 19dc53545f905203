-- enqueue: stores jobs and queues them, each job as one step: its hash, its place at the back of
-- the ready queue, its entries in the listing indexes, and a wake-up token for idle workers.
-- One job or a batch of many. A job whose id is taken is refused; in mode 'stop' the jobs after it
-- are not looked at (those before it stay stored), in mode 'skip' they are stored all the same.
--
-- KEYS[1]  {prefix}:seq               STRING  submission counter
-- KEYS[2]  {prefix}:queue:ready       LIST    ready job ids, oldest first
-- KEYS[3]  {prefix}:index:submitted   ZSET    job id -> submission number
-- KEYS[4]  {prefix}:queue:wake        LIST    wake-up tokens
-- ARGV[1]  job key prefix ({prefix}:job:)
-- ARGV[2]  wake-up list cap
-- ARGV[3]  number of jobs N
-- ARGV[4]  'stop' or 'skip': what a taken id does to the jobs after it
-- then, N times: job id, number F of field/value strings, then F strings (field, value, ...)
--   (without `seq`, which this script assigns)
-- Returns {'ok', p1, p2, ...}: the positions (from 1) of the jobs refused because their id was
-- taken (none when all were stored), or, in mode 'stop', {'exists', id} for the first one.

local job_prefix = ARGV[1]
local wake_cap = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local stop = ARGV[4] == 'stop'

local last = tonumber(redis.call('INCRBY', KEYS[1], n))
local seq = last - n

local ids = {}
local scored = {}

local function flush()
  if #ids == 0 then
    return
  end
  redis.call('RPUSH', KEYS[2], unpack(ids))
  redis.call('ZADD', KEYS[3], unpack(scored))
  local tokens = {}
  for i = 1, math.min(#ids, wake_cap) do
    tokens[i] = '1'
  end
  redis.call('RPUSH', KEYS[4], unpack(tokens))
  redis.call('LTRIM', KEYS[4], 0, wake_cap - 1)
end

-- One EXISTS for all the keys: when none exists (the usual case) no job needs its own check.
local keys = {}
local at = 5
for i = 1, n do
  keys[i] = job_prefix .. ARGV[at]
  at = at + 2 + tonumber(ARGV[at + 1])
end
local check_each = redis.call('EXISTS', unpack(keys)) > 0

local refused = {'ok'}
at = 5
for i = 1, n do
  local id = ARGV[at]
  local count = tonumber(ARGV[at + 1])
  local key = keys[i]
  if check_each and redis.call('EXISTS', key) == 1 then
    if stop then
      flush()
      return {'exists', id}
    end
    refused[#refused + 1] = i
  else
    seq = seq + 1
    redis.call('HSET', key, 'seq', seq, unpack(ARGV, at + 2, at + 1 + count))
    ids[#ids + 1] = id
    scored[#scored + 1] = seq
    scored[#scored + 1] = id
  end
  at = at + 2 + count
end
flush()
return refused
