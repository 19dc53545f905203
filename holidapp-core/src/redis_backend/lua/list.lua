-- list: the newest jobs of one queue that match a filter and come before a position, as
-- {id, submission number} candidates for a listing page; the caller merges the candidates of
-- several queues and reads the jobs it shows. Examines at most a given number of jobs, so a page
-- costs bounded work however many jobs the filter skips. Skips finished jobs past their retention
-- that no purge has removed yet. Read only.
--
-- Where each status's jobs are, newest first:
-- - `submitted`: for each priority level, its ready list read from its tail (jobs never leased,
--   in submission order) and its returned set (jobs back from a lease or due after a delay, by
--   submission number); and the scheduled index (jobs waiting for their time, by submission
--   number), all merged;
-- - `in progress`: the leased set (as many as there are leases held), sorted here by `seq`;
-- - `complete`, `failed`, `cancelled`: their index, by submission number.
--
-- KEYS[1]  {p}:{xx}:q:{queue}:expiry     ZSET  job id -> expires-at (ms)
-- KEYS[2]  {p}:{xx}:q:{queue}:leased     ZSET  job id -> lease deadline (ms)
-- KEYS[3]  {p}:{xx}:q:{queue}:levels     ZSET  priority levels other than 0 with jobs
-- KEYS[4]  {p}:{xx}:q:{queue}:scheduled  ZSET  job id -> submission number (delayed jobs)
-- KEYS[5]  {p}:{xx}:q:{queue}:complete   ZSET  job id -> submission number
-- KEYS[6]  {p}:{xx}:q:{queue}:failed     ZSET  job id -> submission number
-- KEYS[7]  {p}:{xx}:q:{queue}:cancelled  ZSET  job id -> submission number
-- ARGV[1]  job key prefix ({p}:{xx}:job:)
-- ARGV[2]  now (ms since the epoch), or '' for Redis's clock
-- ARGV[3]  list only jobs with a lower submission number than this; '' for no bound
-- ARGV[4]  '1' to list the job whose number equals the bound as well, '0' not to
-- ARGV[5]  how many candidates to answer
-- ARGV[6]  most jobs to examine
-- ARGV[7]  which statuses to list: five '1' or '0' flags, for submitted, in progress, complete,
--          failed and cancelled
-- ARGV[8]  only jobs of this kind; '' for any
-- ARGV[9]  the status of a waiting job ('submitted'): the ready lists also hold ids of jobs
--          deleted or cancelled before any lease, which are skipped
-- ARGV[10] the queue's key prefix ({p}:{xx}:q:{queue}:), under which the levels' lines are
-- Returns {exhausted, last, id1, seq1, id2, seq2, ...}: exhausted is 1 when every matching job
-- before the bound was examined, else 0; last is the submission number of the last job examined
-- ('' when none was).

local job_prefix = ARGV[1]
local now = now_ms(ARGV[2])
local bound = tonumber(ARGV[3])
local inclusive = ARGV[4] == '1'
local want = tonumber(ARGV[5])
local budget = tonumber(ARGV[6])
local kind = ARGV[8]
local waiting = ARGV[9]
local function wanted(i)
  return string.sub(ARGV[7], i, i) == '1'
end

-- Whether a job numbered `seq` comes before the bound.
local function before(seq)
  if not bound then
    return true
  end
  return seq < bound or (inclusive and seq == bound)
end

local chunk = 256
local sources = {}

-- A ZSET scored by submission number, read newest first from the bound, in chunks.
local function index_source(key)
  -- The bound as the caller wrote it: `tostring` would round it to 14 digits.
  local max = '+inf'
  if bound then
    max = inclusive and ARGV[3] or ('(' .. ARGV[3])
  end
  local source = {buffer = {}, at = 1, read = 0}
  function source.head()
    if source.at > #source.buffer then
      source.buffer = redis.call('ZREVRANGEBYSCORE', key, max, '-inf', 'WITHSCORES', 'LIMIT',
        source.read, chunk)
      source.read = source.read + chunk
      source.at = 1
    end
    return source.buffer[source.at], tonumber(source.buffer[source.at + 1])
  end
  function source.advance()
    source.at = source.at + 2
  end
  return source
end

local function seq_of(id)
  return tonumber(redis.call('HGET', job_prefix .. id, 'seq'))
end

-- A ready list (jobs never leased, in submission order) read from its tail, each job's `seq` read
-- from its hash.
local function list_source(key)
  -- The last position of the list before the bound: the list is in submission order, so a
  -- binary search finds it.
  local top = redis.call('LLEN', key) - 1
  if bound and top >= 0 then
    local lo, hi = 0, top
    top = -1
    while lo <= hi do
      local mid = math.floor((lo + hi) / 2)
      local seq = seq_of(redis.call('LINDEX', key, mid)) or 0
      if before(seq) then
        top = mid
        lo = mid + 1
      else
        hi = mid - 1
      end
    end
  end
  -- Small reads first: with many levels, most lists contribute a few jobs to a page.
  local source = {buffer = {}, at = 1, next = top, size = 16}
  function source.head()
    while source.at > #source.buffer and source.next >= 0 do
      local lo = math.max(0, source.next - source.size + 1)
      local ids = redis.call('LRANGE', key, lo, source.next)
      source.next = lo - 1
      source.size = math.min(source.size * 2, chunk)
      source.buffer = {}
      source.at = 1
      for i = #ids, 1, -1 do
        local seq, status = unpack(redis.call('HMGET', job_prefix .. ids[i], 'seq', 'status'))
        if seq and status == waiting and before(tonumber(seq)) then
          source.buffer[#source.buffer + 1] = ids[i]
          source.buffer[#source.buffer + 1] = tonumber(seq)
        end
      end
    end
    return source.buffer[source.at], source.buffer[source.at + 1]
  end
  function source.advance()
    source.at = source.at + 2
  end
  return source
end

-- The members of a small set keyed otherwise (lease deadline, retry time), sorted by `seq`.
local function sorted_source(key)
  local entries = {}
  for _, id in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    local seq = seq_of(id)
    if seq and before(seq) then
      entries[#entries + 1] = {id, seq}
    end
  end
  table.sort(entries, function(a, b) return a[2] > b[2] end)
  local source = {at = 1}
  function source.head()
    local entry = entries[source.at]
    if entry then
      return entry[1], entry[2]
    end
  end
  function source.advance()
    source.at = source.at + 1
  end
  return source
end

if wanted(1) then
  for _, p in ipairs(all_levels(KEYS[3])) do
    sources[#sources + 1] = list_source(level_key(ARGV[10], 'ready', p))
    sources[#sources + 1] = index_source(level_key(ARGV[10], 'returned', p))
  end
  sources[#sources + 1] = index_source(KEYS[4])
end
if wanted(2) then
  sources[#sources + 1] = sorted_source(KEYS[2])
end
if wanted(3) then
  sources[#sources + 1] = index_source(KEYS[5])
end
if wanted(4) then
  sources[#sources + 1] = index_source(KEYS[6])
end
if wanted(5) then
  sources[#sources + 1] = index_source(KEYS[7])
end

local none_expired = redis.call('ZCOUNT', KEYS[1], '-inf', now) == 0
local found = {}
local last = ''
local examined = 0
local exhausted = 0
while true do
  local best, best_id, best_seq = nil, nil, nil
  for _, source in ipairs(sources) do
    local id, seq = source.head()
    if id and (not best_seq or seq > best_seq) then
      best, best_id, best_seq = source, id, seq
    end
  end
  if not best then
    exhausted = 1
    break
  end
  if #found >= 2 * want or examined >= budget then
    break
  end
  best.advance()
  examined = examined + 1
  last = string.format('%d', best_seq)
  local live = true
  if not none_expired then
    local expires_at = redis.call('ZSCORE', KEYS[1], best_id)
    live = not expires_at or tonumber(expires_at) > now
  end
  if live and kind ~= '' then
    live = redis.call('HGET', job_prefix .. best_id, 'kind') == kind
  end
  if live then
    found[#found + 1] = best_id
    found[#found + 1] = last
  end
end
local answer = {exhausted, last}
for i = 1, #found do
  answer[#answer + 1] = found[i]
end
return answer
