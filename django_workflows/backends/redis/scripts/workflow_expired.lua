-- Executions whose execution timeout passed, for time_out_workflow_instances to end.
-- ARGV: most to return. Returns {iid, eid, instance JSON, timeout seconds}... (flat).
local limit = tonumber(arg())
local now = now_ms()
local zkey = NS .. 'wf-timeouts'
local out = {}
for _, m in ipairs(redis.call('ZRANGEBYSCORE', zkey, '-inf', now, 'LIMIT', 0, limit)) do
  local p = split(m)
  local h = redis.call('HMGET', ekey('instance', p[1], p[2]), 'state', 'inst', 'timeout_s')
  if h[1] ~= '0' then
    redis.call('ZREM', zkey, m)
  else
    out[#out + 1] = p[1]
    out[#out + 1] = p[2]
    out[#out + 1] = h[2]
    out[#out + 1] = h[3] or ''
  end
end
return out
