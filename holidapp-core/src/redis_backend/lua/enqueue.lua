-- enqueue: stores jobs of one queue and queues them, each job as one step: its hash and its place
-- at the back of the ready list (which is also the listing order of jobs never leased), and a
-- wake-up token for idle workers.
-- One job or a batch of many. A job whose id is taken is refused; in mode 'stop' the jobs after it
-- are not looked at (those before it stay stored), in mode 'skip' they are stored all the same.
--
-- Submission numbers (`seq`) order the listings. They count up within the tag, and never run
-- behind the clock: a job gets at least `now * 1024`, so numbers of different tags (queues)
-- compare by submission time to the millisecond.
--
-- KEYS[1]  {p}:{xx}:seq               STRING  submission counter of the tag
-- KEYS[2]  {p}:{xx}:q:{queue}:ready   LIST    job ids never leased, oldest first
-- KEYS[3]  {p}:{xx}:q:{queue}:wake    LIST    wake-up tokens
-- ARGV[1]  job key prefix ({p}:{xx}:job:)
-- ARGV[2]  wake-up list cap
-- ARGV[3]  number of jobs N
-- ARGV[4]  'stop' or 'skip': what a taken id does to the jobs after it
-- ARGV[5]  the status of a new job ('submitted')
-- ARGV[6]  now (ms since the epoch)
-- then, N times: job id, kind, params (JSON), created_at, max_attempts, the number F of optional
--   field/value strings, then those F strings (field, value, ...; they include the queue's name
--   unless it is `default`)
-- Values travel without their field names, the job's id is not a field (its key names it), and
-- the submission number is formatted as an integer: a bulk enqueue spends most of its time in
-- this script, and every field of a new hash costs a scan of those before it.
-- Returns {'ok', p1, p2, ...}: the positions (from 1) of the jobs refused because their id was
-- taken (none when all were stored), or, in mode 'stop', {'exists', id} for the first one.

local job_prefix = ARGV[1]
local wake_cap = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local stop = ARGV[4] == 'stop'
local status = ARGV[5]
local FIXED = 6

local seq = math.max(tonumber(ARGV[6]) * 1024, tonumber(redis.call('GET', KEYS[1]) or '0') + 1) - 1

local ids = {}

local function flush()
  if #ids == 0 then
    return
  end
  redis.call('SET', KEYS[1], string.format('%d', seq))
  redis.call('RPUSH', KEYS[2], unpack(ids))
  local tokens = {}
  for i = 1, math.min(#ids, wake_cap) do
    tokens[i] = '1'
  end
  redis.call('RPUSH', KEYS[3], unpack(tokens))
  redis.call('LTRIM', KEYS[3], 0, wake_cap - 1)
end

-- One EXISTS for all the keys: when none exists (the usual case) no job needs its own check.
local keys = {}
local at = 7
for i = 1, n do
  keys[i] = job_prefix .. ARGV[at]
  at = at + FIXED + tonumber(ARGV[at + 5])
end
local check_each = redis.call('EXISTS', unpack(keys)) > 0

local refused = {'ok'}
at = 7
for i = 1, n do
  local id = ARGV[at]
  local extra = tonumber(ARGV[at + 5])
  local key = keys[i]
  if check_each and redis.call('EXISTS', key) == 1 then
    if stop then
      flush()
      return {'exists', id}
    end
    refused[#refused + 1] = i
  else
    seq = seq + 1
    -- '%d' formats an integer; a bare number would go through '%.14g', several times slower.
    local s = string.format('%d', seq)
    if extra == 0 then
      redis.call('HSET', key, 'kind', ARGV[at + 1], 'status', status,
        'params', ARGV[at + 2], 'created_at', ARGV[at + 3], 'max_attempts', ARGV[at + 4],
        'seq', s)
    else
      redis.call('HSET', key, 'kind', ARGV[at + 1], 'status', status,
        'params', ARGV[at + 2], 'created_at', ARGV[at + 3], 'max_attempts', ARGV[at + 4],
        'seq', s, unpack(ARGV, at + FIXED, at + FIXED - 1 + extra))
    end
    ids[#ids + 1] = id
  end
  at = at + FIXED + extra
end
flush()
return refused
