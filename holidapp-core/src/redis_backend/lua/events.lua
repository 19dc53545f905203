-- events: the job event helpers every script opens with (the backend prepends this file to each
-- script's text). A script that changes jobs' statuses gathers one event per job with add_event
-- and appends them all as one entry of its queue's stream with flush_events: the field `e` holds
-- the events, each `id US kind US status US worker` (US = \31, worker empty when none), joined by
-- RS (\30). The entry's id (Redis's time) is the events' time. The stream keeps about its last
-- 1,000 entries (`MAXLEN ~`, EVENTS_RETAINED_ENTRIES in the Rust code).

local EVENTS = {}

local function add_event(id, kind, status, worker)
  EVENTS[#EVENTS + 1] = id .. '\31' .. (kind or '') .. '\31' .. status .. '\31' .. (worker or '')
end

local function flush_events(key)
  if #EVENTS > 0 then
    redis.call('XADD', key, 'MAXLEN', '~', 1000, '*', 'e', table.concat(EVENTS, '\30'))
  end
end
