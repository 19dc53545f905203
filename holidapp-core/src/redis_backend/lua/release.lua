-- release: gives a leased job back to its queue at once (into its priority level's returned
-- set, where it goes before the jobs submitted after it), under the current fencing token, taking
-- back the attempt (the move the status machine decides for a worker stopping before it could
-- finish).
--
-- KEYS[1]  {p}:{xx}:job:{id}               HASH
-- KEYS[2]  {p}:{xx}:q:{queue}:leased       ZSET  (also the index of `in progress` jobs)
-- KEYS[3]  {p}:{xx}:q:{queue}:levels       ZSET  priority levels other than 0 with jobs
-- KEYS[4]  {p}:{xx}:q:{queue}:wake         LIST
-- ARGV[1]  job id
-- ARGV[2]  fencing token of the caller's lease
-- ARGV[3]  expected status ('in progress')
-- ARGV[4]  new status ('submitted')
-- ARGV[5]  wake-up list cap
-- ARGV[6]  change of the attempt count (-1)
-- ARGV[7]  the queue's key prefix ({p}:{xx}:q:{queue}:), under which the levels' lines are
-- (The queue's event stream, ARGV[7] .. 'events', gets the job's event.)
-- Returns 1, or 0 when the lease is lost.

local id = ARGV[1]
local status, token, seq, attempts, priority, kind, worker = unpack(redis.call('HMGET', KEYS[1],
  'status', 'token', 'seq', 'attempts', 'priority', 'kind', 'worker'))
if status ~= ARGV[3] or token ~= ARGV[2] then
  return 0
end
attempts = math.max(0, (tonumber(attempts) or 0) + tonumber(ARGV[6]))
redis.call('HSET', KEYS[1], 'status', ARGV[4], 'attempts', string.format('%d', attempts))
redis.call('ZREM', KEYS[2], id)
make_ready(ARGV[7], KEYS[3], priority, seq, id)
redis.call('RPUSH', KEYS[4], '1')
redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[5]) - 1)
add_event(id, kind, ARGV[4], worker)
flush_events(ARGV[7] .. 'events')
return 1
