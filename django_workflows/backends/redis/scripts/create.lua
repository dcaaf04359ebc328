-- create_workflow_instance. ARGV: iid, eid, instance JSON, name, queue, metadata JSON, started event JSON.
local iid, eid, inst, name, queue, meta, started = arg(), arg(), arg(), arg(), arg(), arg(), arg()
if create_instance(iid, eid, inst, name, queue, meta, started, now_ms()) then
  return 'ok'
end
return 'exists'
