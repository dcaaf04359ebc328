-- The activity tasks whose attempt timed out, for time_out_activity_tasks to fail.
-- ARGV: most to return. Returns {activity id, scheduled event JSON, heartbeat details or '',
-- timeout type}... (flat).
local limit = tonumber(arg())
local now = now_ms()
local zkey = NS .. 'act-deadlines'
local out = {}
for _, aid in ipairs(redis.call('ZRANGEBYSCORE', zkey, '-inf', now, 'LIMIT', 0, limit)) do
  local akey = NS .. 'activity:' .. aid
  local h = redis.call('HMGET', akey, 'event', 'details', 'deadline', unpack(DEADLINES))
  if not h[1] or not h[3] then
    redis.call('ZREM', zkey, aid)  -- completed meanwhile
  elseif tonumber(h[3]) <= now then
    local kind = 'start_to_close'
    for i, field in ipairs(DEADLINES) do
      if h[3 + i] == h[3] then
        kind = TIMEOUT_TYPES[field]
        break
      end
    end
    out[#out + 1] = aid
    out[#out + 1] = h[1]
    out[#out + 1] = h[2] or ''
    out[#out + 1] = kind
  end
end
return out
