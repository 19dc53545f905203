-- data_record: one record of the loaded data set by id, read in one step so a concurrent
-- replace cannot pair an old position with new records. Read only.
--
-- KEYS[1]  {prefix}:{data}:index     HASH  record id -> position
-- KEYS[2]  {prefix}:{data}:records   LIST  record JSON
-- ARGV[1]  record id
-- Returns the record's JSON, or nil.

local position = redis.call('HGET', KEYS[1], ARGV[1])
if not position then
  return false
end
return redis.call('LINDEX', KEYS[2], tonumber(position))
