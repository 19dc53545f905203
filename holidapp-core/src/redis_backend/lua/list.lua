-- list: a page of jobs, newest first, from one status index or merged from all four, skipping
-- finished jobs past their retention that no purge has removed yet (and ids whose hash is gone).
-- Read only.
--
-- KEYS[1..N-1]  the status indexes to list: one {prefix}:index:{status}, or all four
--               (ZSET  job id -> submission number; a job is in exactly one of them)
-- KEYS[N]       {prefix}:index:expiry   ZSET  job id -> expires-at (ms)
-- ARGV[1]  job key prefix ({prefix}:job:)
-- ARGV[2]  now (ms since the epoch)
-- ARGV[3]  how many live jobs to skip
-- ARGV[4]  page size
-- Returns a list of job hashes, each {field, value, ...}.

local job_prefix = ARGV[1]
local now = tonumber(ARGV[2])
local offset = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])
local expiry = KEYS[#KEYS]
local indexes = #KEYS - 1
local page = {}

local function add(id)
  local fields = redis.call('HGETALL', job_prefix .. id)
  if #fields > 0 then
    page[#page + 1] = fields
  end
end

local none_expired = redis.call('ZCOUNT', expiry, '-inf', now) == 0

if none_expired and indexes == 1 then
  -- Every id in the index is live: read the slice directly.
  for _, id in ipairs(redis.call('ZREVRANGE', KEYS[1], offset, offset + limit - 1)) do
    add(id)
  end
  return page
end

-- Merge the indexes newest first, reading each in chunks.
local chunk = 256
local buffers, cursors, read = {}, {}, {}
for i = 1, indexes do
  buffers[i], cursors[i], read[i] = {}, 1, 0
end

local function head(i)
  if cursors[i] > #buffers[i] then
    buffers[i] = redis.call('ZREVRANGE', KEYS[i], read[i], read[i] + chunk - 1, 'WITHSCORES')
    read[i] = read[i] + chunk
    cursors[i] = 1
  end
  return buffers[i][cursors[i]], tonumber(buffers[i][cursors[i] + 1])
end

local skipped = 0
while #page < limit do
  local best, best_score = nil, nil
  for i = 1, indexes do
    local id, score = head(i)
    if id and (not best_score or score > best_score) then
      best, best_score = i, score
    end
  end
  if not best then
    break
  end
  local id = buffers[best][cursors[best]]
  cursors[best] = cursors[best] + 2
  local live = true
  if not none_expired then
    local expires_at = redis.call('ZSCORE', expiry, id)
    live = not expires_at or tonumber(expires_at) > now
  end
  if live then
    if skipped < offset then
      if redis.call('EXISTS', job_prefix .. id) == 1 then
        skipped = skipped + 1
      end
    else
      add(id)
    end
  end
end
return page
