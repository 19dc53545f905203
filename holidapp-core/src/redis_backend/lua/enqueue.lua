-- enqueue: stores jobs of one queue and queues them, each job as one step: its hash and its place
-- at the back of its priority level's ready list (in submission order, which is also the listing
-- order of jobs never leased), or, for a job that may run only later, in the delayed set (by that
-- time) and the scheduled index (by submission number); and a wake-up token for idle workers,
-- which then wait for the earliest delayed job. One job or a batch of many, each stored or
-- refused on its own:
--
-- - a job whose id is taken is refused ('exists');
-- - a job with a unique key that a job still stored holds answers that job's id and is not
--   stored (the first submit wins; the key is kept for a given time);
-- - a job past the queue's quotas is refused: the bytes of results the queue holds
--   ('full:results'), the number of its waiting jobs ('full:waiting'). A refused job writes
--   nothing.
--
-- Submission numbers (`seq`) order the listings. They count up within the tag, and never run
-- behind the clock: a job gets at least `now * 1024`, so numbers of different tags (queues)
-- compare by submission time to the millisecond.
--
-- KEYS[1]  {p}:{xx}:seq                  STRING  submission counter of the tag
-- KEYS[2]  {p}:{xx}:q:{queue}:levels     ZSET    priority levels other than 0 with jobs
-- KEYS[3]  {p}:{xx}:q:{queue}:wake       LIST    wake-up tokens
-- KEYS[4]  {p}:{xx}:q:{queue}:scheduled  ZSET    delayed job id -> submission number
-- KEYS[5]  {p}:{xx}:q:{queue}:delayed    ZSET    delayed job id -> when it may run (ms)
-- KEYS[6]  {p}:{xx}:q:{queue}:counters   HASH    deleted (ids left in ready lists), result_bytes
-- ARGV[1]  job key prefix ({p}:{xx}:job:)
-- ARGV[2]  wake-up list cap
-- ARGV[3]  number of jobs N
-- ARGV[4]  the status of a new job ('submitted')
-- ARGV[5]  now (ms since the epoch), or '' for Redis's clock
-- ARGV[6]  most waiting jobs the queue may hold (0: no limit)
-- ARGV[7]  most result bytes the queue may hold (0: no limit)
-- ARGV[8]  unique key prefix ({p}:{xx}:q:{queue}:unique:)
-- ARGV[9]  (unused: each job says how long its unique key holds)
-- ARGV[10] the status of a deleted job's remains ('deleted')
-- ARGV[11] the queue's key prefix ({p}:{xx}:q:{queue}:), under which the levels' lines are
-- ARGV[12] the status of a running job ('in progress')
-- (The queue's event stream, ARGV[11] .. 'events', gets one entry with the stored jobs' events.)
-- then, N times: job id, kind, params (JSON), created_at, max_attempts, unique key ('' for
--   none), priority, when it may run (ms; '' for now), how long its unique key holds at most
--   (ms), 'a' when the key holds only while the job waits or runs (else ''), the number F of
--   optional field/value strings, then those F strings (field, value, ...; they include the
--   queue's name unless it is `default`, the unique key and its scope, a priority other than 0
--   and the run time)
-- Values travel without their field names, the job's id is not a field (its key names it), and
-- the submission number is formatted as an integer: a bulk enqueue spends most of its time in
-- this script, and every field of a new hash costs a scan of those before it.
-- Returns one answer per job: 'ok', 'exists', 'full:results', 'full:waiting', or the id of the
-- job holding its unique key.

local job_prefix = ARGV[1]
local wake_cap = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local status = ARGV[4]
local max_waiting = tonumber(ARGV[6])
local max_result_bytes = tonumber(ARGV[7])
local unique_prefix = ARGV[8]
local tombstone = ARGV[10]
local queue_prefix = ARGV[11]
local running = ARGV[12]
local FIXED = 11
local FIRST = 13

local now = now_ms(ARGV[5])
local seq = math.max(now * 1024, tonumber(redis.call('GET', KEYS[1]) or '0') + 1) - 1

local room = nil
if max_waiting > 0 then
  local deleted = tonumber(redis.call('HGET', KEYS[6], 'deleted') or '0')
  room = max_waiting - (level_entries(queue_prefix, KEYS[2]) + redis.call('ZCARD', KEYS[5])
    - deleted)
end
local results_full = max_result_bytes > 0
  and tonumber(redis.call('HGET', KEYS[6], 'result_bytes') or '0') >= max_result_bytes

-- One EXISTS for all the keys: when none exists (the usual case) no job needs its own check.
local keys = {}
local at = FIRST
for i = 1, n do
  keys[i] = job_prefix .. ARGV[at]
  at = at + FIXED + tonumber(ARGV[at + 10])
end
local check_each = redis.call('EXISTS', unpack(keys)) > 0

local answers = {}
-- Ids to push, per priority level ('0' the usual one), in submission order.
local lines = {}
local line_order = {}
local stored = 0
local delayed, scheduled = {}, {}
at = FIRST
for i = 1, n do
  local id = ARGV[at]
  local unique = ARGV[at + 5]
  local priority = ARGV[at + 6]
  local run_at = tonumber(ARGV[at + 7])
  local unique_ttl = ARGV[at + 8]
  local active = ARGV[at + 9]
  local extra = tonumber(ARGV[at + 10])
  local key = keys[i]
  local holder = nil
  if unique ~= '' then
    -- '<holder id> <held until (ms)>', and ' a' after it for a key held only while its job
    -- waits or runs: held only until then by this script's clock, and only while the holder is
    -- kept (and, with ' a', waits or runs).
    local held = redis.call('GET', unique_prefix .. unique)
    if held then
      local id_held, until_ms, flag = string.match(held, '^(%S+) (%d+) ?(a?)$')
      if id_held and tonumber(until_ms) > now then
        local held_by = redis.call('HGET', job_prefix .. id_held, 'status')
        if held_by and held_by ~= tombstone
          and (flag ~= 'a' or held_by == status or held_by == running) then
          holder = id_held
        end
      end
    end
  end
  if check_each and redis.call('EXISTS', key) == 1 then
    answers[i] = 'exists'
  elseif holder then
    answers[i] = holder
  elseif results_full then
    answers[i] = 'full:results'
  elseif room and room <= 0 then
    answers[i] = 'full:waiting'
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
    if unique ~= '' then
      local value = id .. ' ' .. string.format('%d', now + tonumber(unique_ttl))
      if active == 'a' then
        value = value .. ' a'
      end
      redis.call('SET', unique_prefix .. unique, value, 'PX', unique_ttl)
    end
    if room then
      room = room - 1
    end
    if run_at and run_at > now then
      delayed[#delayed + 1] = string.format('%d', run_at)
      delayed[#delayed + 1] = id
      scheduled[#scheduled + 1] = s
      scheduled[#scheduled + 1] = id
    else
      local line = lines[priority]
      if not line then
        line = {}
        lines[priority] = line
        line_order[#line_order + 1] = priority
      end
      line[#line + 1] = id
    end
    stored = stored + 1
    add_event(id, ARGV[at + 1], status, nil)
    answers[i] = 'ok'
  end
  at = at + FIXED + extra
end

if stored > 0 then
  redis.call('SET', KEYS[1], string.format('%d', seq))
  for _, priority in ipairs(line_order) do
    redis.call('RPUSH', level_key(queue_prefix, 'ready', priority), unpack(lines[priority]))
    if priority ~= '0' then
      redis.call('ZADD', KEYS[2], priority, priority)
    end
  end
  if #delayed > 0 then
    redis.call('ZADD', KEYS[5], unpack(delayed))
    redis.call('ZADD', KEYS[4], unpack(scheduled))
  end
  local tokens = {}
  for i = 1, math.min(stored, wake_cap) do
    tokens[i] = '1'
  end
  redis.call('RPUSH', KEYS[3], unpack(tokens))
  redis.call('LTRIM', KEYS[3], 0, wake_cap - 1)
  flush_events(queue_prefix .. 'events')
end
return answers
