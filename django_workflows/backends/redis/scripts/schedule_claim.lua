-- ScheduleStore.claim: lease the schedule due first (or the one named) unless a claim holds it.
-- ARGV: lease ms, token, schedule id ('' = the first due one), how many due ids to look at.
-- Reply: {schedule id or false, record JSON or false, server time ms}.
local lease, token, only, limit = tonumber(arg()), arg(), arg(), tonumber(arg())
local now = now_ms()
local ids
if only ~= '' then
  ids = {only}
else
  ids = redis.call('ZRANGEBYSCORE', NS .. 'schedules-due', '-inf', now, 'LIMIT', 0, limit)
end
for _, sid in ipairs(ids) do
  local key = NS .. 'schedule:' .. sid
  local h = redis.call('HMGET', key, 'data', 'until')
  if h[1] and (not h[2] or tonumber(h[2]) <= now) then
    redis.call('HSET', key, 'token', token, 'until', now + lease)
    return {sid, h[1], tostring(now)}
  end
end
return {false, false, tostring(now)}
