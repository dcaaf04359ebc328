-- remove_workflow_instance. ARGV: iid, eid.
local iid, eid = arg(), arg()
local state = redis.call('HGET', ekey('instance', iid, eid), 'state')
if not state then
  return 'notfound'
end
if state == '0' then
  return 'active'
end
remove_execution(iid, eid)
return 'ok'
