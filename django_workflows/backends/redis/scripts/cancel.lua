-- cancel_workflow_instance: queue the cancellation for that exact execution. One whose start is
-- still delayed ends at once instead, without running: its start event moves to the history,
-- followed by the canceled and finished events given.
-- ARGV: iid, eid, event JSON, TTL ms, canceled event JSON, finished event JSON, parent iid,
-- parent eid, parent event JSON ('' when there is no parent).
local iid, eid, event, ttl = arg(), arg(), arg(), tonumber(arg())
local canceled, finished, piid, peid, pevent = arg(), arg(), arg(), arg(), arg()
local key = ekey('instance', iid, eid)
local refused = inactive(key)
if refused then
  return refused
end
local now = now_ms()
local delayed = redis.call('HMGET', key, 'delayed', 'start_at')
if delayed[1] then
  if tonumber(delayed[2]) > now then
    local started = redis.call('HGET', ekey('future', iid, eid), delayed[1])
    redis.call('HDEL', key, 'delayed')
    push_history(iid, eid, started)
    push_history(iid, eid, canceled)
    push_history(iid, eid, finished)
    finish(iid, eid, '2', now, ttl)
    if pevent ~= '' then
      deliver(piid, peid, pevent, now)
    end
    return 'ended'
  end
  start_delayed(iid, eid, now)  -- due, not moved yet: the start goes first
end
deliver(iid, eid, event, now)
return 'ok'
