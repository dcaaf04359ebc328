-- abandon_workflow_task: release the lease (and the stickiness) so any worker can run the task.
-- ARGV: iid, eid, token.
local iid, eid, token = arg(), arg(), arg()
local key = ekey('instance', iid, eid)
local now = now_ms()
local h = held(key, token, now, 'queue')
if not h then
  return 'lost'
end
redis.call('HDEL', key, 'token', 'until', 'sticky')
redis.call('ZREM', NS .. 'wf-leases:' .. h[3], member(iid, eid))
unqueue(iid, eid, key)
enqueue(iid, eid, now, true)
return 'ok'
