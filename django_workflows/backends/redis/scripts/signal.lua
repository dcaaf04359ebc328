-- signal_workflow: look up the active execution and queue the signal in one step.
-- ARGV: iid, event JSON. Returns {'ok', instance JSON} | {'finished'} | {'notfound'}.
local iid, event = arg(), arg()
local eid = deliver_active(iid, event, now_ms())
if eid then
  return {'ok', redis.call('HGET', ekey('instance', iid, eid), 'inst')}
end
if redis.call('EXISTS', NS .. 'executions:' .. iid) == 1 then
  return {'finished'}
end
return {'notfound'}
