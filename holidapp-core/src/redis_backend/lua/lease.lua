-- lease: hands up to MAX ready jobs of one queue to one worker: the highest priority level
-- first, and within a level the oldest submission first. First makes jobs whose time has come
-- (delayed submits, retries after their backoff) leasable, into their level's returned set.
-- Within a level, jobs never leased nor delayed wait in the level's ready list (in submission
-- order) and the others in its returned set (by submission number); the two are merged by
-- submission number, which costs nothing while the returned set is empty. For each job taken:
-- checks it is still `submitted` (compare-and-set), marks it `in progress` with the worker,
-- start time, a fresh fencing token and one more attempt (the move the status machine decides
-- for a lease), and files it under its deadline in the leased set (the only place the deadline
-- is kept; the leased set is also the index of `in progress` jobs). Ids of deleted jobs left in
-- a ready list are dropped with what is left of their hash, ids of cancelled ones just dropped.
-- Levels found empty leave the set of levels. When nothing is ready, the wake-up list is
-- emptied (its tokens would only wake workers for nothing).
--
-- KEYS[1]  {p}:{xx}:q:{queue}:levels     ZSET  priority levels other than 0 with jobs
-- KEYS[2]  {p}:{xx}:q:{queue}:scheduled  ZSET  job id -> submission number (delayed jobs)
-- KEYS[3]  {p}:{xx}:q:{queue}:delayed    ZSET  job id -> ready-at (ms)
-- KEYS[4]  {p}:{xx}:q:{queue}:leased     ZSET  job id -> lease deadline (ms)
-- KEYS[5]  {p}:{xx}:token                STRING  fencing token counter
-- KEYS[6]  {p}:{xx}:q:{queue}:wake       LIST
-- KEYS[7]  {p}:{xx}:q:{queue}:counters   HASH  deleted: ids of deleted or cancelled jobs left in
--                                              ready lists
-- ARGV[1]  job key prefix ({p}:{xx}:job:)
-- ARGV[2]  now (ms since the epoch), or '' for Redis's clock
-- ARGV[3]  lease length (ms)
-- ARGV[4]  worker identity
-- ARGV[5]  most jobs to lease
-- ARGV[6]  expected status ('submitted')
-- ARGV[7]  new status ('in progress')
-- ARGV[8]  most delayed jobs to make leasable in this call
-- ARGV[9]  the status of a deleted job's remains ('deleted')
-- ARGV[10] the status of a cancelled job ('cancelled')
-- ARGV[11] the queue's key prefix ({p}:{xx}:q:{queue}:), under which the levels' lines are
-- ARGV[12..] the job fields to answer (they include `status`, `attempts` and `kind`)
-- (The queue's event stream, ARGV[11] .. 'events', gets one entry with the leased jobs' events.)
-- Returns one MessagePack string (cmsgpack) of {now, {id, token, {value, ...}}, ...}: the time of
-- the lease (ms), then per leased job the values of those fields as they were before this lease,
-- false where the hash lacks one (the caller knows what the lease changed). Values only, in the
-- caller's order: no field names to send, scan or parse. One string rather than nested arrays:
-- Redis turns it into a reply without walking the tables, and the caller decodes it in one pass
-- instead of parsing three RESP values per job and one per field.

local job_prefix = ARGV[1]
local now = now_ms(ARGV[2])
local deadline = string.format('%d', now + tonumber(ARGV[3]))
local max = tonumber(ARGV[5])
local from, to = ARGV[6], ARGV[7]
local tombstone = ARGV[9]
local cancelled = ARGV[10]
local queue_prefix = ARGV[11]
local read, status_at, attempts_at, kind_at = {}, nil, nil, nil
for i = 12, #ARGV do
  read[#read + 1] = ARGV[i]
  if ARGV[i] == 'status' then
    status_at = #read
  elseif ARGV[i] == 'attempts' then
    attempts_at = #read
  elseif ARGV[i] == 'kind' then
    kind_at = #read
  end
end

local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, tonumber(ARGV[8]))
if #due > 0 then
  redis.call('ZREM', KEYS[3], unpack(due))
  redis.call('ZREM', KEYS[2], unpack(due))
  for _, id in ipairs(due) do
    local seq, p = unpack(redis.call('HMGET', job_prefix .. id, 'seq', 'priority'))
    if seq then
      make_ready(queue_prefix, KEYS[1], p, seq, id)
    end
  end
end

-- Takes up to `want` ids of level `p` into `ids`, oldest submission first; answers how many.
-- Fewer than `want` means the level is empty now.
local function take_level(p, want, ids)
  local returned = level_key(queue_prefix, 'returned', p)
  local ready = level_key(queue_prefix, 'ready', p)
  local back = redis.call('ZRANGE', returned, 0, want - 1, 'WITHSCORES')
  if #back == 0 then
    local fresh = redis.call('LPOP', ready, want)
    if not fresh then
      return 0
    end
    for _, id in ipairs(fresh) do
      ids[#ids + 1] = id
    end
    return #fresh
  end
  local fresh = redis.call('LRANGE', ready, 0, want - 1)
  local i, j, n = 1, 1, 0
  local fresh_seq = nil
  local taken_back = {}
  while n < want do
    local back_id, back_seq = back[2 * i - 1], tonumber(back[2 * i])
    local fresh_id = fresh[j]
    if fresh_id and not fresh_seq then
      -- An id whose hash is gone (a cancelled job since purged) counts as oldest: it is dropped.
      fresh_seq = tonumber(redis.call('HGET', job_prefix .. fresh_id, 'seq')) or 0
    end
    if back_id and (not fresh_id or back_seq < fresh_seq) then
      ids[#ids + 1] = back_id
      taken_back[#taken_back + 1] = back_id
      i = i + 1
    elseif fresh_id then
      ids[#ids + 1] = fresh_id
      j = j + 1
      fresh_seq = nil
    else
      break
    end
    n = n + 1
  end
  if #taken_back > 0 then
    redis.call('ZREM', returned, unpack(taken_back))
  end
  if j > 1 then
    redis.call('LPOP', ready, j - 1)
  end
  return n
end

-- Takes up to `want` ids, the highest level first.
local function take(want)
  local ids = {}
  for _, p in ipairs(all_levels(KEYS[1])) do
    local asked = want - #ids
    if asked <= 0 then
      break
    end
    if take_level(p, asked, ids) < asked and p ~= '0' then
      redis.call('ZREM', KEYS[1], p)
    end
  end
  return ids
end

local ids = take(max)
if #ids == 0 then
  redis.call('DEL', KEYS[6])
  return cmsgpack.pack({now})
end

local started_at = rfc3339(now)
local worker = ARGV[4]
local leased, scored = {now}, {}
local dropped = 0
while #ids > 0 do
  -- One counter step for the whole batch: each lease still gets a token never used before. The
  -- counter never runs behind the clock (at least now * 1024, as submission numbers), so a
  -- counter that lost its last steps (a replica promoted before it received them) does not hand
  -- their tokens out again: by the time a replica takes over, the clock has passed them.
  local token = math.max(tonumber(redis.call('GET', KEYS[5]) or '0'), now * 1024)
  redis.call('SET', KEYS[5], string.format('%d', token + #ids))
  local dropped_now = 0
  for _, id in ipairs(ids) do
    local key = job_prefix .. id
    local values = redis.call('HMGET', key, unpack(read))
    local status = values[status_at]
    local attempts = tonumber(values[attempts_at])
    if status == from then
      token = token + 1
      -- Integers formatted with '%d': a bare number would go through the much slower '%.14g'.
      redis.call('HSET', key, 'status', to, 'worker', worker, 'started_at', started_at,
        'token', string.format('%d', token), 'attempts', string.format('%d', (attempts or 0) + 1))
      scored[#scored + 1] = deadline
      scored[#scored + 1] = id
      leased[#leased + 1] = {id, token, values}
      add_event(id, kind_at and values[kind_at], to, worker)
    elseif status == tombstone then
      redis.call('DEL', key)
      dropped_now = dropped_now + 1
    elseif status == cancelled or not status then
      -- Left in a ready list by a job cancelled before any lease (its hash gone too once
      -- deleted or purged): counted among the ids left there when it was cancelled.
      dropped_now = dropped_now + 1
    end
    -- Anything else is an id left behind by a change made outside these scripts: dropped.
  end
  dropped = dropped + dropped_now
  -- Remains of deleted jobs took places in the batch: take more in their stead (each is
  -- dropped once, so this costs no more than the deletes did).
  ids = {}
  if dropped_now > 0 and #leased - 1 < max then
    ids = take(max - (#leased - 1))
  end
end
if dropped > 0 then
  redis.call('HINCRBY', KEYS[7], 'deleted', -dropped)
end
if #scored > 0 then
  redis.call('ZADD', KEYS[4], unpack(scored))
end
flush_events(queue_prefix .. 'events')
return cmsgpack.pack(leased)
