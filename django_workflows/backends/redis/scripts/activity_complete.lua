-- complete_activity_task, for one or several activities at once (completions a worker finished
-- at the same moment share one call): delete each task and queue its result for the workflow.
-- ARGV: worker name, workflow lock timeout ms, new lease token (for the workflow tasks handed
-- on), n + workflow queue names the worker polls, then per activity: activity id, token,
-- result event JSON, expected lease count, '1' if the worker takes the workflow's next task.
-- Returns one reply per activity: 'ok', 'lost', or the workflow task leased to the worker (as
-- lib.lua's lease_workflow returns it).
--
-- With a token, only its holder may complete before the lease runs out. Without one (an
-- activity leased too often), the task must be unleased and leased exactly that many times,
-- so that of several pollers that saw it only one records the failure.
--
-- Handing on: if the workflow's queue is one the worker polls and its workflow task is free
-- (not leased, not blocked, not sticky to another worker), the result's stream entry is dropped
-- and the task leased to the worker at once, so the workflow goes on without a poll. The
-- instance keeps the entry's name while leased, so that events arriving meanwhile do not queue
-- it again; completing or abandoning the task forgets it (unqueue).
local me, lock, token = arg(), tonumber(arg()), arg()
local serves = {}
for _ = 1, tonumber(arg()) do
  serves[arg()] = true
end
local now = now_ms()

local function hand_on(iid, eid)
  local key = ekey('instance', iid, eid)
  local h = redis.call('HMGET', key, 'state', 'queue', 'token', 'until', 'worker', 'sticky', 'buntil', 'qk', 'qid')
  if h[1] ~= '0' or not serves[h[2]] or not h[9] then
    return nil  -- ended, another queue, or not queued (blocked, or its start is delayed)
  end
  if (h[3] and tonumber(h[4]) > now) or (h[7] and tonumber(h[7]) > now) then
    return nil  -- leased, or blocked until later
  end
  if h[5] ~= me and h[6] and tonumber(h[6]) > now and not worker_gone(h[5]) then
    return nil  -- sticky to another worker
  end
  drop_entry(h[8], h[9])
  return lease_workflow(iid, eid, key, h[2], me, token, now, lock)
end

local replies = {}
while argi < #ARGV do
  local aid, atoken, result, leases, take = arg(), arg(), arg(), tonumber(arg()), arg() == '1'
  local akey = NS .. 'activity:' .. aid
  local h
  if atoken ~= '' then
    h = held(akey, atoken, now, 'queue', 'qk', 'qid', 'iid', 'eid')
    if h and not in_time(akey, now) then
      h = nil  -- a result after the attempt timed out is refused
    end
  else
    h = redis.call('HMGET', akey, 'token', 'until', 'queue', 'qk', 'qid', 'iid', 'eid', 'leases')
    if not h[3] or (h[1] and tonumber(h[2]) > now) or tonumber(h[8]) ~= leases then
      h = nil
    end
  end
  local reply = 'lost'
  if h then
    delete_activity(aid, h[3], h[4], h[5], h[6], h[7])
    reply = 'ok'
    if deliver(h[6], h[7], result, now) and take then
      reply = hand_on(h[6], h[7]) or 'ok'
    end
  end
  replies[#replies + 1] = reply
end
return replies
