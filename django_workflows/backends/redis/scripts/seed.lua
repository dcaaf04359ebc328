-- create_workflow_instance_from_history: an active execution that starts with a history (a
-- reset), its pending events, activity tasks and timers, in one step.
-- ARGV: iid, eid, instance JSON, name, queue, metadata JSON, then
--   n + history events (JSON, numbered 1..n);
--   n + pending events (JSON);
--   n + timers as (event id, visible-at ms, JSON);
--   n + activities as (activity id, queue, JSON).
-- Returns 'ok', or 'exists' if the instance id has an active execution or this one exists.
local iid, eid, inst, name, queue, meta = arg(), arg(), arg(), arg(), arg(), arg()
local akey = NS .. 'active:' .. iid
local key = ekey('instance', iid, eid)
if redis.call('EXISTS', akey) == 1 or redis.call('EXISTS', key) == 1 then
  return 'exists'
end
local now = now_ms()
local order = redis.call('INCR', NS .. 'creation-seq')
local n = tonumber(arg())
redis.call('HSET', key, 'inst', inst, 'name', name, 'queue', queue, 'meta', meta, 'state', '0',
  'created', now, 'seq', n, 'order', order)
redis.call('SET', akey, eid)
local xkey = NS .. 'executions:' .. iid
redis.call('ZADD', xkey, order, eid)
redis.call('PERSIST', xkey)
redis.call('SADD', NS .. 'instances-active', iid)
redis.call('SADD', NS .. 'wf-queues', queue)
local hkey = ekey('history', iid, eid)
for _ = 1, n do
  redis.call('RPUSH', hkey, arg())
end
local pkey = ekey('pending', iid, eid)
n = tonumber(arg())
for _ = 1, n do
  redis.call('RPUSH', pkey, arg())
end
n = tonumber(arg())
for _ = 1, n do
  local event_id, at, json = arg(), tonumber(arg()), arg()
  add_future(iid, eid, event_id, at, json, now)
end
n = tonumber(arg())
for _ = 1, n do
  local aid, aqueue, json = arg(), arg(), arg()
  local stream = NS .. 'act-queue:' .. aqueue
  ensure_group(stream)
  local id = redis.call('XADD', stream, '*', 'a', aid)
  redis.call('HSET', NS .. 'activity:' .. aid, 'inst', inst, 'iid', iid, 'eid', eid, 'queue', aqueue,
    'event', json, 'leases', 0, 'qk', stream, 'qid', id)
  redis.call('SADD', ekey('activities', iid, eid), aid)
  redis.call('SADD', NS .. 'act-queues', aqueue)
end
if redis.call('LLEN', pkey) > 0 then
  enqueue(iid, eid, now, true)
end
return 'ok'
