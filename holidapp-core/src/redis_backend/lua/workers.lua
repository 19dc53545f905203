-- workers: the live entries of the worker registry (read only).
--
-- KEYS[1]  {p}:{w}:workers            HASH  worker id -> its info, as JSON
-- KEYS[2]  {p}:{w}:workers:deadlines  ZSET  worker id by when its entry dies (ms)
-- KEYS[3]  {p}:{w}:workers:seen       HASH  worker id -> when it last beat (ms)
-- ARGV[1]  the time in ms, or '' for Redis's own clock
-- ARGV[2]  the most entries to answer
-- Returns a flat array: info JSON, last beat (ms), for each live worker by id.

local now = now_ms(ARGV[1])
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf', 'LIMIT', 0, tonumber(ARGV[2]))
if #ids == 0 then
  return {}
end
table.sort(ids)
local infos = redis.call('HMGET', KEYS[1], unpack(ids))
local seen = redis.call('HMGET', KEYS[3], unpack(ids))
local out = {}
for i = 1, #ids do
  if infos[i] and seen[i] then
    out[#out + 1] = infos[i]
    out[#out + 1] = seen[i]
  end
end
return out
