-- list: a page of jobs, newest first (by submission number), from one status or from all four
-- merged, skipping finished jobs past their retention that no purge has removed yet (and ids
-- whose hash is gone). `in progress` jobs are the members of the leased set (as many as there are
-- leases held), sorted here by their `seq` field. Read only.
--
-- KEYS[1]     {prefix}:index:expiry   ZSET  job id -> expires-at (ms)
-- KEYS[2]     {prefix}:queue:leased   ZSET  job id -> lease deadline (ms)
-- KEYS[3..]   the status indexes to list: none, one, or submitted, complete and failed
--             (ZSET  job id -> submission number)
-- ARGV[1]  job key prefix ({prefix}:job:)
-- ARGV[2]  now (ms since the epoch)
-- ARGV[3]  how many live jobs to skip
-- ARGV[4]  page size
-- ARGV[5]  '1' to include `in progress` jobs, '0' not to
-- Returns a list of job hashes, each {field, value, ...}.

local job_prefix = ARGV[1]
local now = tonumber(ARGV[2])
local offset = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])
local page = {}

local function add(id)
  local fields = redis.call('HGETALL', job_prefix .. id)
  if #fields > 0 then
    page[#page + 1] = fields
  end
end

local none_expired = redis.call('ZCOUNT', KEYS[1], '-inf', now) == 0

if none_expired and #KEYS == 3 and ARGV[5] == '0' then
  -- One index whose ids are all live: read the slice directly.
  for _, id in ipairs(redis.call('ZREVRANGE', KEYS[3], offset, offset + limit - 1)) do
    add(id)
  end
  return page
end

-- Sources, each a newest-first stream of {id, seq}: the status indexes, read in chunks...
local sources = {}
local chunk = 256
for k = 3, #KEYS do
  local source = {buffer = {}, at = 1, read = 0}
  function source.head()
    if source.at > #source.buffer then
      source.buffer = redis.call('ZREVRANGE', KEYS[k], source.read, source.read + chunk - 1,
        'WITHSCORES')
      source.read = source.read + chunk
      source.at = 1
    end
    return source.buffer[source.at], tonumber(source.buffer[source.at + 1])
  end
  function source.advance()
    source.at = source.at + 2
  end
  sources[#sources + 1] = source
end

-- ...and the jobs in progress, sorted by submission number.
if ARGV[5] == '1' then
  local running = {}
  for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
    local seq = tonumber(redis.call('HGET', job_prefix .. id, 'seq'))
    if seq then
      running[#running + 1] = {id, seq}
    end
  end
  table.sort(running, function(a, b) return a[2] > b[2] end)
  local source = {at = 1}
  function source.head()
    local entry = running[source.at]
    if entry then
      return entry[1], entry[2]
    end
  end
  function source.advance()
    source.at = source.at + 1
  end
  sources[#sources + 1] = source
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
