-- renew: extends leases of one queue that are still held, each checked on its own: the job must
-- be `in progress` under the caller's fencing token. A lost lease does not stop the others.
--
-- KEYS[1]  {p}:{xx}:q:{queue}:leased   ZSET  job id -> lease deadline (ms)
-- ARGV[1]  job key prefix ({p}:{xx}:job:)
-- ARGV[2]  now (ms since the epoch), or '' for Redis's clock
-- ARGV[3]  lease length (ms): the new deadline is now plus this
-- ARGV[4]  status a held lease has ('in progress')
-- then pairs: job id, token
-- Returns {deadline, held, ...}: the new deadline (ms), then 1 (renewed) or 0 (lease lost) per
-- pair.

local deadline = now_ms(ARGV[2]) + tonumber(ARGV[3])
local held, scored = {deadline}, {}
for i = 5, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local status, current = unpack(redis.call('HMGET', ARGV[1] .. id, 'status', 'token'))
  if status == ARGV[4] and current == token then
    scored[#scored + 1] = deadline
    scored[#scored + 1] = id
    held[#held + 1] = 1
  else
    held[#held + 1] = 0
  end
end
if #scored > 0 then
  redis.call('ZADD', KEYS[1], unpack(scored))
end
return held
