-- complete_activity_task: delete the task and queue its result for the workflow.
-- ARGV: activity id, token, result event JSON, expected lease count.
-- With a token, only its holder may complete before the lease runs out. Without one (an
-- activity leased too often), the task must be unleased and leased exactly that many times,
-- so that of several pollers that saw it only one records the failure.
local aid, token, result, leases = arg(), arg(), arg(), tonumber(arg())
local akey = NS .. 'activity:' .. aid
local now = now_ms()
local h
if token ~= '' then
  h = held(akey, token, now, 'queue', 'qk', 'qid', 'iid', 'eid')
  if h and not in_time(akey, now) then
    h = nil  -- a result after the attempt timed out is refused
  end
else
  h = redis.call('HMGET', akey, 'token', 'until', 'queue', 'qk', 'qid', 'iid', 'eid', 'leases')
  if not h[3] or (h[1] and tonumber(h[2]) > now) or tonumber(h[8]) ~= leases then
    h = nil
  end
end
if not h then
  return 'lost'
end
delete_activity(aid, h[3], h[4], h[5], h[6], h[7])
deliver(h[6], h[7], result, now)
return 'ok'
