-- heartbeat_activity_task: extend the lease, store the details (unless none are given) and move
-- the heartbeat deadline. ARGV: activity id, token, lock timeout ms, '1' if details follow,
-- details. Returns 'ok', 'stop' (cancellation requested, or the execution ended) or 'lost'.
local aid, token, lock, has_details, details = arg(), arg(), tonumber(arg()), arg(), arg()
local akey = NS .. 'activity:' .. aid
local now = now_ms()
local h = held(akey, token, now, 'queue', 'hbt', 'cancel', 'iid', 'eid')
if not h or not in_time(akey, now) then
  return 'lost'
end
redis.call('HSET', akey, 'until', now + lock)
redis.call('ZADD', NS .. 'act-leases:' .. h[3], now + lock, aid)
if has_details == '1' then
  redis.call('HSET', akey, 'details', details)
end
if h[4] then
  redis.call('HSET', akey, 'hb_by', now + tonumber(h[4]))
  set_deadline(akey, aid)
end
if h[5] == '1' or redis.call('HGET', ekey('instance', h[6], h[7]), 'state') ~= '0' then
  return 'stop'
end
return 'ok'
