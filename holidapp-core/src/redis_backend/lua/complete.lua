-- complete: for each given lease of one queue, stores the job's result and its content type and
-- marks it `complete`, as one step, only under the current fencing token (compare-and-set on
-- status and token). A small result comes as an argument. A large one does not pass through Lua
-- (where a value costs a Lua string as large as itself, and garbage-collector work): the caller
-- sends it beforehand, in the same round trip, as a plain SET to a staging key named by the job
-- and the lease's token ({p}:{xx}:result:{id}:{token}, with a time limit), which this script
-- renames into place and makes persistent. A result of zero length is not stored as a key at
-- all: a `complete` job without a result key has an empty result. The job is filed in the expiry
-- index, from which a purge deletes its hash and result once past retention (no Redis TTL: see
-- docs/redis-layout.md), and the result's size is counted in the queue's result bytes. A lost
-- lease changes nothing but deleting its staging key, and does not stop the others.
--
-- KEYS[1]  {p}:{xx}:q:{queue}:leased     ZSET  job id -> lease deadline (ms)
-- KEYS[2]  {p}:{xx}:q:{queue}:complete   ZSET  job id -> submission number
-- KEYS[3]  {p}:{xx}:q:{queue}:expiry     ZSET  job id -> expires-at (ms)
-- KEYS[4]  {p}:{xx}:q:{queue}:counters   HASH  result_bytes; completed: jobs completed, ever
-- KEYS[5]  {p}:{xx}:q:{queue}:events     STREAM one entry with the completed jobs' events
-- ARGV[1]  job key prefix ({p}:{xx}:job:)
-- ARGV[2]  result key prefix ({p}:{xx}:result:)
-- ARGV[3]  expected status ('in progress')
-- ARGV[4]  new status ('complete')
-- ARGV[5]  now (ms since the epoch), or '' for Redis's clock
-- ARGV[6]  retention (ms)
-- then octuples: job id, fencing token of the caller's lease, the result's bytes when they come
-- as an argument (else ''), the size of a staged result ('0' for none), content type, the job's
-- kind and worker as the lease gave them (for its event), and 'e' when the lease found an error
-- of an earlier attempt on the job (to clear), else '' (nothing but the scripts that end a lease
-- changes these, so a lease that passes the fencing check knows them)
-- Returns {now, done, ...}: the time of completion (ms), then per octuple 1 (completed), the
-- job's last progress report (completed, and it has one: the caller answers the job with it), 0
-- (lease lost) or -1 (its staging key is gone, its time limit past: nothing changed, the caller
-- may send the result again).

local now = now_ms(ARGV[5])
local finished_at = rfc3339(now)
local expires_at = string.format('%d', now + tonumber(ARGV[6]))
local done = {now}
local ids, by_seq, expiring = {}, {}, {}
local bytes = 0
for i = 7, #ARGV, 8 do
  local id, token = ARGV[i], ARGV[i + 1]
  local key = ARGV[1] .. id
  local status, current, seq, progress = unpack(redis.call('HMGET', key, 'status', 'token',
    'seq', 'progress'))
  local staged = tonumber(ARGV[i + 3])
  local staging = staged > 0 and ARGV[2] .. id .. ':' .. token
  local held = status == ARGV[3] and current == token
  if held and staging and redis.call('EXISTS', staging) == 0 then
    done[#done + 1] = -1
  elseif held then
    if staging then
      redis.call('RENAME', staging, ARGV[2] .. id)
      redis.call('PERSIST', ARGV[2] .. id)
      bytes = bytes + staged
    elseif string.len(ARGV[i + 2]) > 0 then
      redis.call('SET', ARGV[2] .. id, ARGV[i + 2])
      bytes = bytes + string.len(ARGV[i + 2])
    end
    -- The token stays, as that of the last lease.
    redis.call('HSET', key, 'status', ARGV[4], 'finished_at', finished_at, 'expires_at',
      expires_at, 'result_type', ARGV[i + 4])
    if ARGV[i + 7] == 'e' then
      redis.call('HDEL', key, 'error')
    end
    ids[#ids + 1] = id
    by_seq[#by_seq + 1] = seq
    by_seq[#by_seq + 1] = id
    expiring[#expiring + 1] = expires_at
    expiring[#expiring + 1] = id
    done[#done + 1] = progress or 1
    add_event(id, ARGV[i + 5], ARGV[4], ARGV[i + 6])
  else
    if staging then
      redis.call('DEL', staging)
    end
    done[#done + 1] = 0
  end
end
if #ids > 0 then
  redis.call('ZREM', KEYS[1], unpack(ids))
  redis.call('ZADD', KEYS[2], unpack(by_seq))
  redis.call('ZADD', KEYS[3], unpack(expiring))
  if bytes > 0 then
    redis.call('HINCRBY', KEYS[4], 'result_bytes', bytes)
  end
  redis.call('HINCRBY', KEYS[4], 'completed', #ids)
  flush_events(KEYS[5])
end
return done
