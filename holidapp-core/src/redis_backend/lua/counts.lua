-- counts: the sizes of one queue, read in one step (read only).
--
-- KEYS[1]  {p}:{xx}:q:{queue}:levels     ZSET  priority levels other than 0 with jobs
-- KEYS[2]  {p}:{xx}:q:{queue}:delayed    ZSET
-- KEYS[3]  {p}:{xx}:q:{queue}:leased     ZSET
-- KEYS[4]  {p}:{xx}:q:{queue}:complete   ZSET
-- KEYS[5]  {p}:{xx}:q:{queue}:failed     ZSET
-- KEYS[6]  {p}:{xx}:q:{queue}:cancelled  ZSET
-- KEYS[7]  {p}:{xx}:q:{queue}:counters   HASH  deleted: ids of deleted or cancelled jobs left in
--                                              ready lists
-- ARGV[1]  the queue's key prefix ({p}:{xx}:q:{queue}:), under which the levels' lines are
-- Returns {ready, delayed, in progress, complete, failed, cancelled, completed ever, failed
-- ever}: ready counts the jobs leasable now, ids of deleted or cancelled jobs left in ready lists
-- not included.

local deleted, completed, failed =
  unpack(redis.call('HMGET', KEYS[7], 'deleted', 'completed', 'failed'))
deleted = tonumber(deleted or '0')
return {
  math.max(0, level_entries(ARGV[1], KEYS[1]) - deleted),
  redis.call('ZCARD', KEYS[2]),
  redis.call('ZCARD', KEYS[3]),
  redis.call('ZCARD', KEYS[4]),
  redis.call('ZCARD', KEYS[5]),
  redis.call('ZCARD', KEYS[6]),
  tonumber(completed or '0'),
  tonumber(failed or '0'),
}
