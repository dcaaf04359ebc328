-- One batch of remove_workflow_instances. ARGV: finished before (ms), batch size.
-- Returns {removed, looked at}.
local before, limit = tonumber(arg()), tonumber(arg())
local zkey = NS .. 'finished'
local batch = redis.call('ZRANGEBYSCORE', zkey, '-inf', '(' .. before, 'LIMIT', 0, limit)
local removed = 0
for _, m in ipairs(batch) do
  local p = split(m)
  if redis.call('EXISTS', ekey('instance', p[1], p[2])) == 1 then
    remove_execution(p[1], p[2])
    removed = removed + 1
  else
    redis.call('ZREM', zkey, m)  -- expired by TTL already
  end
end
return {removed, #batch}
