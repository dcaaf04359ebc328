-- get_latest_execution: the newest execution of an instance id that still exists (executions
-- that expired by TTL are dropped from the index on the way). ARGV: iid.
local iid = arg()
local xkey = NS .. 'executions:' .. iid
while true do
  local newest = redis.call('ZREVRANGE', xkey, 0, 0)
  if not newest[1] then
    return false
  end
  local inst = redis.call('HGET', ekey('instance', iid, newest[1]), 'inst')
  if inst then
    return inst
  end
  redis.call('ZREM', xkey, newest[1])
end
