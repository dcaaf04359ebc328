-- extend_workflow_task / extend_activity_task: only the holder of the current token, before
-- the lease ran out. ARGV: kind ('wf' or 'act'), task id ('iid:eid' or the activity id),
-- token, lock timeout ms.
local kind, id, token, lock = arg(), arg(), arg(), tonumber(arg())
local key = NS .. (kind == 'wf' and 'instance:' or 'activity:') .. id
local now = now_ms()
local h = held(key, token, now, 'queue')
if not h or (kind == 'act' and not in_time(key, now)) then
  return 'lost'  -- an activity attempt past its timeout is not extended
end
redis.call('HSET', key, 'until', now + lock)
redis.call('ZADD', NS .. kind .. '-leases:' .. h[3], now + lock, id)
return 'ok'
