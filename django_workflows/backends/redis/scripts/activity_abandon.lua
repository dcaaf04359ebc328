-- abandon_activity_task: release the lease; a graceful release does not count as a lease.
-- ARGV: activity id, token.
local aid, token = arg(), arg()
local akey = NS .. 'activity:' .. aid
local h = held(akey, token, now_ms(), 'queue', 'qk', 'qid', 'leases')
if not h then
  return 'lost'
end
redis.call('HDEL', akey, 'token', 'until')
redis.call('ZREM', NS .. 'act-leases:' .. h[3], aid)
redis.call('HSET', akey, 'leases', math.max(0, tonumber(h[6]) - 1))
if h[5] then  -- none for a task its workflow task's completion leased (never queued)
  drop_entry(h[4], h[5])
end
redis.call('HSET', akey, 'qid', redis.call('XADD', h[4], '*', 'a', aid))
return 'ok'
