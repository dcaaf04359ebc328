-- create_workflow_instance. ARGV: iid, eid, instance JSON, name, queue, metadata JSON, started
-- event JSON, then the start arguments (lib.lua start_args).
local iid, eid, inst, name, queue, meta, started = arg(), arg(), arg(), arg(), arg(), arg(), arg()
local start = start_args()
if create_instance(iid, eid, inst, name, queue, meta, started, now_ms(), start) then
  return 'ok'
end
return 'exists'
