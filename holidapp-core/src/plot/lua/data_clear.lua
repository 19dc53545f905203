-- data_clear: removes the loaded data set and moves the version on; does nothing when no set is
-- loaded.
--
-- KEYS[1]  {prefix}:{data}:records   LIST
-- KEYS[2]  {prefix}:{data}:ids       LIST
-- KEYS[3]  {prefix}:{data}:index     HASH
-- KEYS[4]  {prefix}:{data}:count     STRING
-- KEYS[5]  {prefix}:{data}:version   STRING
-- Returns 1 when a set was removed, 0 when none was loaded.

if redis.call('EXISTS', KEYS[4]) == 0 then
  return 0
end
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
redis.call('INCR', KEYS[5])
return 1
