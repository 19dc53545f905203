-- renew: extends leases of one queue that are still held, each checked on its own: the job must
-- be `in progress` under the caller's fencing token. A lost lease does not stop the others; one
-- lost because the job was cancelled says so, so that its worker stops running it.
--
-- KEYS[1]  {p}:{xx}:q:{queue}:leased   ZSET  job id -> lease deadline (ms)
-- ARGV[1]  job key prefix ({p}:{xx}:job:)
-- ARGV[2]  now (ms since the epoch), or '' for Redis's clock
-- ARGV[3]  lease length (ms): the new deadline is now plus this
-- ARGV[4]  status a held lease has ('in progress')
-- ARGV[5]  status of a cancelled job ('cancelled')
-- then pairs: job id, token
-- Returns {deadline, held, ...}: the new deadline (ms), then per pair 1 (renewed), 0 (lease lost)
-- or 2 (the job was cancelled).

local deadline = now_ms(ARGV[2]) + tonumber(ARGV[3])
local held, scored = {deadline}, {}
for i = 6, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local status, current = unpack(redis.call('HMGET', ARGV[1] .. id, 'status', 'token'))
  if status == ARGV[4] and current == token then
    scored[#scored + 1] = deadline
    scored[#scored + 1] = id
    held[#held + 1] = 1
  elseif status == ARGV[5] then
    held[#held + 1] = 2
  else
    held[#held + 1] = 0
  end
end
if #scored > 0 then
  redis.call('ZADD', KEYS[1], unpack(scored))
end
return held
