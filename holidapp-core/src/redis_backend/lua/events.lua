-- events: the job event helpers every script opens with (the backend prepends this file to each
-- script's text). A script that changes jobs' statuses gathers one event per job with add_event
-- and appends them all as one entry of its queue's stream with flush_events. The entry's field
-- `d` holds the first event's `kind US status US worker` (US = \31, worker empty when none), the
-- defaults; the field `e` holds the events joined by RS (\30), each the job id alone when its kind,
-- status and worker are the defaults (as they are for every job of one lease or one completion
-- batch), or `id US kind US status US worker`. The entry's id (Redis's time) is the events' time.
-- The stream keeps about its last 1,000 entries (`MAXLEN ~`, EVENTS_RETAINED_ENTRIES in the Rust
-- code).

local EVENTS = {}
local EVENT_KIND, EVENT_STATUS, EVENT_WORKER

local function add_event(id, kind, status, worker)
  kind, worker = kind or '', worker or ''
  if not EVENT_STATUS then
    EVENT_KIND, EVENT_STATUS, EVENT_WORKER = kind, status, worker
  end
  if kind == EVENT_KIND and status == EVENT_STATUS and worker == EVENT_WORKER then
    EVENTS[#EVENTS + 1] = id
  else
    EVENTS[#EVENTS + 1] = id .. '\31' .. kind .. '\31' .. status .. '\31' .. worker
  end
end

local function flush_events(key)
  if #EVENTS > 0 then
    redis.call('XADD', key, 'MAXLEN', '~', 1000, '*',
      'd', EVENT_KIND .. '\31' .. EVENT_STATUS .. '\31' .. EVENT_WORKER,
      'e', table.concat(EVENTS, '\30'))
  end
end
