-- Priority levels, shared by every script (prepended after clock.lua). A queue's leasable jobs
-- of priority 0 are in `ready` (never leased nor delayed, submission order) and `returned`
-- (back from a lease or due after a delay, by submission number); those of priority p in
-- `ready:p` and `returned:p`, and the set `levels` names every p other than 0 that may have
-- some. All of them share the queue's hash tag.

-- The key of priority `p`'s line named `name` ('ready' or 'returned') under the queue's key
-- prefix; `p` is the job hash's `priority` field (false or nil, as a missing field reads, for 0).
local function level_key(queue_prefix, name, p)
  if not p or p == '0' then
    return queue_prefix .. name
  end
  return queue_prefix .. name .. ':' .. p
end

-- Makes job `id` (number `seq`, priority `p`) leasable: into its level's returned set, and the
-- level into the set of levels.
local function make_ready(queue_prefix, levels_key, p, seq, id)
  redis.call('ZADD', level_key(queue_prefix, 'returned', p), seq, id)
  if p and p ~= '0' then
    redis.call('ZADD', levels_key, p, p)
  end
end

-- Every priority level that may hold leasable jobs, highest first, 0 among them.
local function all_levels(levels_key)
  local order = {}
  local zero_done = false
  for _, p in ipairs(redis.call('ZREVRANGE', levels_key, 0, -1)) do
    if not zero_done and tonumber(p) < 0 then
      order[#order + 1] = '0'
      zero_done = true
    end
    order[#order + 1] = p
  end
  if not zero_done then
    order[#order + 1] = '0'
  end
  return order
end

-- How many entries the lines of every level hold (ids of deleted or cancelled jobs included).
local function level_entries(queue_prefix, levels_key)
  local n = 0
  for _, p in ipairs(all_levels(levels_key)) do
    n = n + redis.call('LLEN', level_key(queue_prefix, 'ready', p))
      + redis.call('ZCARD', level_key(queue_prefix, 'returned', p))
  end
  return n
end
