-- terminate_workflow_instance: end the execution now, drop its pending work and activities,
-- and tell the parent. ARGV: iid, eid, terminated event JSON (without sequence id), TTL ms,
-- parent iid, parent eid, parent event JSON ('' when there is no parent).
local iid, eid, event, ttl = arg(), arg(), arg(), tonumber(arg())
local piid, peid, pevent = arg(), arg(), arg()
local key = ekey('instance', iid, eid)
local refused = inactive(key)
if refused then
  return refused
end
local now = now_ms()
local seq = redis.call('HINCRBY', key, 'seq', 1)
-- The sequence id is only known here; JSON keys are unordered, so it goes in front.
redis.call('RPUSH', ekey('history', iid, eid), '{"sid":' .. seq .. ',' .. string.sub(event, 2))
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
