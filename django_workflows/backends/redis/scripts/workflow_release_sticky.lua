-- release_sticky_instances: a worker that stops gracefully hands its sticky executions back.
-- ARGV: worker name, sticky timeout ms. Returns how many queued tasks moved to their queues.
--
-- Executions sticky to the worker with a task queued in its sticky stream go to their queue
-- streams at once; for those without one, a "gone" marker (for as long as stickiness can last)
-- makes enqueue() and the pollers treat the worker as not sticky. A worker of the same name
-- that polls again clears the marker.
local me, sticky_ms = arg(), tonumber(arg())
local now = now_ms()
redis.call('SET', NS .. 'wf-gone:' .. me, '1', 'PX', math.max(sticky_ms, 1))
local stream = NS .. 'wf-sticky:' .. me
local moved = 0
if redis.call('EXISTS', stream) == 1 then
  for _, entry in ipairs(redis.call('XRANGE', stream, '-', '+')) do
    local f = to_map(entry[2])
    local iid, eid = f['i'], f['e']
    local key = ekey('instance', iid, eid)
    local h = redis.call('HMGET', key, 'qk', 'qid', 'state')
    if h[1] == stream and h[2] == entry[1] and h[3] == '0' then
      redis.call('HDEL', key, 'sticky')
      unqueue(iid, eid, key)
      enqueue(iid, eid, now, true)
      moved = moved + 1
    else
      drop_entry(stream, entry[1])
    end
  end
end
return moved
