-- list: a page of jobs from one listing index, newest first, skipping finished jobs past their
-- retention that no purge has removed yet (and ids whose hash is gone). Read only.
--
-- KEYS[1]  the index: {prefix}:index:all or {prefix}:index:{status}   ZSET  id -> submission number
-- KEYS[2]  {prefix}:index:expiry                                      ZSET  id -> expires-at (ms)
-- ARGV[1]  job key prefix ({prefix}:job:)
-- ARGV[2]  now (ms since the epoch)
-- ARGV[3]  how many live jobs to skip
-- ARGV[4]  page size
-- Returns a list of job hashes, each {field, value, ...}.

local job_prefix = ARGV[1]
local now = tonumber(ARGV[2])
local offset = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])
local page = {}

if redis.call('ZCOUNT', KEYS[2], '-inf', now) == 0 then
  -- No expired job waits for a purge: the index holds only live ids, so read the slice directly.
  local ids = redis.call('ZREVRANGE', KEYS[1], offset, offset + limit - 1)
  for _, id in ipairs(ids) do
    local fields = redis.call('HGETALL', job_prefix .. id)
    if #fields > 0 then
      page[#page + 1] = fields
    end
  end
  return page
end

local skipped = 0
local at = 0
local chunk = 500
while #page < limit do
  local ids = redis.call('ZREVRANGE', KEYS[1], at, at + chunk - 1)
  if #ids == 0 then
    break
  end
  for _, id in ipairs(ids) do
    local expires_at = redis.call('ZSCORE', KEYS[2], id)
    if not expires_at or tonumber(expires_at) > now then
      if skipped < offset then
        if redis.call('EXISTS', job_prefix .. id) == 1 then
          skipped = skipped + 1
        end
      else
        local fields = redis.call('HGETALL', job_prefix .. id)
        if #fields > 0 then
          page[#page + 1] = fields
          if #page >= limit then
            break
          end
        end
      end
    end
  end
  at = at + chunk
end
return page
