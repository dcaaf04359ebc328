-- End an execution now without running it (terminated, timed out): append its final events,
-- drop its pending work and activities, and tell the parent.
-- ARGV: iid, eid, n + events JSON (without sequence ids), TTL ms, parent iid, parent eid,
-- parent event JSON ('' when there is no parent), '1' to end it only if its execution timeout
-- passed.
local iid, eid = arg(), arg()
local events = {}
for _ = 1, tonumber(arg()) do
  events[#events + 1] = arg()
end
local ttl, piid, peid, pevent, timed = tonumber(arg()), arg(), arg(), arg(), arg() == '1'
local key = ekey('instance', iid, eid)
local refused = inactive(key)
if refused then
  return refused
end
local now = now_ms()
if timed then
  local at = redis.call('HGET', key, 'timeout_at')
  if not at or tonumber(at) > now then
    return 'intime'
  end
end
for _, event in ipairs(events) do
  push_history(iid, eid, event)
end
local akey = ekey('activities', iid, eid)
for _, aid in ipairs(redis.call('SMEMBERS', akey)) do
  local a = redis.call('HMGET', NS .. 'activity:' .. aid, 'queue', 'qk', 'qid')
  if a[1] then
    delete_activity(aid, a[1], a[2], a[3], iid, eid)
  end
end
redis.call('DEL', akey)
finish(iid, eid, '2', now, ttl)
if pevent ~= '' then
  deliver(piid, peid, pevent, now)
end
return 'ok'
