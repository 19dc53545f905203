-- expired: the first step of recovering expired leases, read only: up to LIMIT leases of one queue
-- whose deadline has passed, with what the status machine needs to decide each one's fate. The
-- caller decides, then runs `expire` with its decisions, which checks again that each lease is
-- still the expired one.
--
-- KEYS[1]  {p}:{xx}:q:{queue}:leased     ZSET  job id -> lease deadline (ms)
-- ARGV[1]  job key prefix ({p}:{xx}:job:)
-- ARGV[2]  now (ms since the epoch), or '' for Redis's clock
-- ARGV[3]  most leases to answer
-- Returns a list of {id, token, status, attempts, max_attempts}, nil where the hash lacks one.

local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms(ARGV[2]), 'LIMIT', 0,
  tonumber(ARGV[3]))
local answer = {}
for _, id in ipairs(expired) do
  local token, status, attempts, max_attempts = unpack(redis.call('HMGET', ARGV[1] .. id,
    'token', 'status', 'attempts', 'max_attempts'))
  answer[#answer + 1] = {id, token, status, attempts, max_attempts}
end
return answer
