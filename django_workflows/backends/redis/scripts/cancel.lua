-- cancel_workflow_instance: queue the cancellation for that exact execution.
-- ARGV: iid, eid, event JSON.
local iid, eid, event = arg(), arg(), arg()
local refused = inactive(ekey('instance', iid, eid))
if refused then
  return refused
end
deliver(iid, eid, event, now_ms())
return 'ok'
