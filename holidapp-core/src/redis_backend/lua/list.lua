-- list: a page of jobs, newest first (by submission number), from one status or from all four
-- merged, skipping finished jobs past their retention that no purge has removed yet (and ids
-- whose hash is gone). Read only.
--
-- Where each status's jobs are, newest first:
-- - `submitted`: the ready list read from its tail (jobs never leased, in submission order),
--   then the returned set (jobs back from a lease, each submitted before any job in the ready
--   list), merged with the delayed set (retries waiting for their time, sorted here by `seq`);
-- - `in progress`: the leased set (as many as there are leases held), sorted here by `seq`;
-- - `complete`, `failed`: their index, by submission number.
--
-- KEYS[1]  {prefix}:index:expiry     ZSET  job id -> expires-at (ms)
-- KEYS[2]  {prefix}:queue:leased     ZSET  job id -> lease deadline (ms)
-- KEYS[3]  {prefix}:queue:ready      LIST  job ids never leased, oldest first
-- KEYS[4]  {prefix}:queue:returned   ZSET  job id -> submission number
-- KEYS[5]  {prefix}:queue:delayed    ZSET  job id -> ready-at (ms)
-- KEYS[6]  {prefix}:index:complete   ZSET  job id -> submission number
-- KEYS[7]  {prefix}:index:failed     ZSET  job id -> submission number
-- ARGV[1]  job key prefix ({prefix}:job:)
-- ARGV[2]  now (ms since the epoch)
-- ARGV[3]  how many live jobs to skip
-- ARGV[4]  page size
-- ARGV[5]  which statuses to list: four '1' or '0' flags, for submitted, in progress, complete
--          and failed
-- Returns a list of job hashes, each {field, value, ...}.

local job_prefix = ARGV[1]
local now = tonumber(ARGV[2])
local offset = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])
local function wanted(i)
  return string.sub(ARGV[5], i, i) == '1'
end
local submitted, in_progress, complete, failed = wanted(1), wanted(2), wanted(3), wanted(4)
local page = {}

local function add(id)
  local fields = redis.call('HGETALL', job_prefix .. id)
  if #fields > 0 then
    page[#page + 1] = fields
  end
end

local none_expired = redis.call('ZCOUNT', KEYS[1], '-inf', now) == 0

-- One finished status whose ids are all live: read the slice of its index directly.
if none_expired and not submitted and not in_progress and complete ~= failed then
  local index = complete and KEYS[6] or KEYS[7]
  for _, id in ipairs(redis.call('ZREVRANGE', index, offset, offset + limit - 1)) do
    add(id)
  end
  return page
end

-- Only `submitted`, with no retry waiting: slices of the ready list (from its tail), then of the
-- returned set.
if submitted and not in_progress and not complete and not failed
    and redis.call('ZCARD', KEYS[5]) == 0 then
  local ready = redis.call('LLEN', KEYS[3])
  if offset < ready then
    local hi = ready - 1 - offset
    local lo = math.max(0, hi - limit + 1)
    local ids = redis.call('LRANGE', KEYS[3], lo, hi)
    for i = #ids, 1, -1 do
      add(ids[i])
    end
  end
  if #page < limit then
    local from = math.max(0, offset - ready)
    local rest = limit - #page
    for _, id in ipairs(redis.call('ZREVRANGE', KEYS[4], from, from + rest - 1)) do
      add(id)
    end
  end
  return page
end

-- Otherwise merge sources, each a newest-first stream of {id, seq}.
local chunk = 256
local sources = {}

-- A ZSET scored by submission number, read in chunks.
local function index_source(key)
  local source = {buffer = {}, at = 1, read = 0}
  function source.head()
    if source.at > #source.buffer then
      source.buffer = redis.call('ZREVRANGE', key, source.read, source.read + chunk - 1,
        'WITHSCORES')
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

-- Jobs never leased (the ready list from its tail, each job's `seq` read from its hash), then
-- jobs back from a lease (the returned set).
local function queued_source()
  local ready = redis.call('LLEN', KEYS[3])
  local returned = index_source(KEYS[4])
  local source = {buffer = {}, at = 1, read = 0}
  function source.head()
    while source.at > #source.buffer and source.read < ready do
      local hi = ready - 1 - source.read
      local lo = math.max(0, hi - chunk + 1)
      local ids = redis.call('LRANGE', KEYS[3], lo, hi)
      source.read = source.read + (hi - lo + 1)
      source.buffer = {}
      source.at = 1
      for i = #ids, 1, -1 do
        local seq = redis.call('HGET', job_prefix .. ids[i], 'seq')
        if seq then
          source.buffer[#source.buffer + 1] = ids[i]
          source.buffer[#source.buffer + 1] = seq
        end
      end
    end
    if source.at > #source.buffer then
      return returned.head()
    end
    return source.buffer[source.at], tonumber(source.buffer[source.at + 1])
  end
  function source.advance()
    if source.at > #source.buffer then
      returned.advance()
    else
      source.at = source.at + 2
    end
  end
  return source
end

-- The members of a small set keyed otherwise (lease deadline, retry time), sorted by `seq`.
local function sorted_source(key)
  local entries = {}
  for _, id in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    local seq = tonumber(redis.call('HGET', job_prefix .. id, 'seq'))
    if seq then
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

if submitted then
  sources[#sources + 1] = queued_source()
  sources[#sources + 1] = sorted_source(KEYS[5])
end
if in_progress then
  sources[#sources + 1] = sorted_source(KEYS[2])
end
if complete then
  sources[#sources + 1] = index_source(KEYS[6])
end
if failed then
  sources[#sources + 1] = index_source(KEYS[7])
end

local skipped = 0
while #page < limit do
  local best, best_id, best_seq = nil, nil, nil
  for _, source in ipairs(sources) do
    local id, seq = source.head()
    if id and (not best_seq or seq > best_seq) then
      best, best_id, best_seq = source, id, seq
    end
  end
  if not best then
    break
  end
  best.advance()
  local live = true
  if not none_expired then
    local expires_at = redis.call('ZSCORE', KEYS[1], best_id)
    live = not expires_at or tonumber(expires_at) > now
  end
  if live then
    if skipped < offset then
      if redis.call('EXISTS', job_prefix .. best_id) == 1 then
        skipped = skipped + 1
      end
    else
      add(best_id)
    end
  end
end
return page
