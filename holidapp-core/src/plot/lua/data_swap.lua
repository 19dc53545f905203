-- data_swap: makes a fully written staging copy of a data set the live one, in one step, and
-- moves the version on. Readers see the old set or the new one, never a mix.
--
-- KEYS[1]  {prefix}:{data}:records          LIST    record JSON, in load order
-- KEYS[2]  {prefix}:{data}:ids              LIST    record ids, in load order
-- KEYS[3]  {prefix}:{data}:index            HASH    record id -> position
-- KEYS[4]  {prefix}:{data}:count            STRING  number of records (present while a set is loaded)
-- KEYS[5]  {prefix}:{data}:version          STRING  changes with every replace and clear
-- KEYS[6]  staging records                LIST    ({prefix}:{data}:staging:{nonce}:records)
-- KEYS[7]  staging ids                    LIST
-- KEYS[8]  staging index                  HASH
-- ARGV[1]  number of records written to the staging keys
-- Returns the new version, or {err} when the staging copy is incomplete (it expired or a write
-- was lost); the live set is then untouched.

local count = tonumber(ARGV[1])
if redis.call('LLEN', KEYS[6]) ~= count or redis.call('LLEN', KEYS[7]) ~= count
    or redis.call('HLEN', KEYS[8]) ~= count then
  redis.call('UNLINK', KEYS[6], KEYS[7], KEYS[8])
  return redis.error_reply('staging copy of the data set is incomplete')
end
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3])
if count > 0 then
  for i = 1, 3 do
    redis.call('RENAME', KEYS[5 + i], KEYS[i])
    redis.call('PERSIST', KEYS[i])
  end
end
redis.call('SET', KEYS[4], count)
return redis.call('INCR', KEYS[5])
