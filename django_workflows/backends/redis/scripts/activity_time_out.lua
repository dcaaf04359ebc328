-- Record the failure of an activity attempt that timed out: delete the task and queue the
-- failure for its execution. ARGV: activity id, failure event JSON. Returns 'ok', or 'gone' if it
-- completed in time or another sweeper recorded it.
local aid, result = arg(), arg()
local akey = NS .. 'activity:' .. aid
local now = now_ms()
local h = redis.call('HMGET', akey, 'queue', 'qk', 'qid', 'iid', 'eid')
if not h[1] or in_time(akey, now) then
  return 'gone'
end
delete_activity(aid, h[1], h[2], h[3], h[4], h[5])
deliver(h[4], h[5], result, now)
return 'ok'
