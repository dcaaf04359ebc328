-- get_workflow_tasks, without blocking: lease up to `want` workflow tasks or say how long to wait.
-- ARGV: worker name, lock timeout ms, new lease token (one for the batch: a lease is fenced by
-- the execution and its token), scan limit, most tasks wanted, queue names...
-- Returns {'task', task...}, each task as lib.lua's lease_workflow returns it, or {'none', ms
-- until the next timer/lease/stickiness expiry or -1}.
--
-- Order: due timers become pending events; stale sticky hand-offs go back to their queue;
-- expired leases are re-leased (a new token fences the old holder off); then stream entries:
-- those delivered to this worker (by its blocking read, or claimed from a consumer that died
-- before leasing them), then new ones. A leased entry is acknowledged at once, so a group's
-- pending list only ever holds entries that were delivered but not leased.
local me, lock, token, limit, want = arg(), tonumber(arg()), arg(), tonumber(arg()), tonumber(arg())
local queues, serves = {}, {}
while argi < #ARGV do
  local q = arg()
  queues[#queues + 1] = q
  serves[q] = true
end
local now = now_ms()

local sticky_stream = NS .. 'wf-sticky:' .. me
redis.call('DEL', NS .. 'wf-gone:' .. me)  -- polling again (a restarted worker of this name)
ensure_group(sticky_stream)
redis.call('PEXPIRE', sticky_stream, STICKY_STREAM_TTL)
local streams = {sticky_stream}
for _, q in ipairs(queues) do
  local s = NS .. 'wf-queue:' .. q
  ensure_group(s)
  streams[#streams + 1] = s
end

move_due_futures(now, limit)
move_due_blocked(now, limit)

-- Hand-offs to a worker whose stickiness ran out go to the queue stream for everyone.
local skey = NS .. 'wf-sticky-expiry'
for _, m in ipairs(redis.call('ZRANGEBYSCORE', skey, '-inf', now, 'LIMIT', 0, limit)) do
  local p = split(m)
  local key = ekey('instance', p[1], p[2])
  local h = redis.call('HMGET', key, 'state', 'qk', 'qid', 'token', 'sticky')
  if h[5] and tonumber(h[5]) > now then
    redis.call('ZADD', skey, h[5], m)  -- sticky again since; wait for the new expiry
  else
    redis.call('ZREM', skey, m)
    local prefix = NS .. 'wf-sticky:'
    if h[1] == '0' and h[3] and not h[4] and string.sub(h[2], 1, #prefix) == prefix then
      unqueue(p[1], p[2], key)
      enqueue(p[1], p[2], now, true)
    end
  end
end

local tasks = {}

local function lease(iid, eid, key, queue)
  return lease_workflow(iid, eid, key, queue, me, token, now, lock)
end

local function sticky_elsewhere(worker, sticky)
  return worker ~= me and sticky and tonumber(sticky) > now and not worker_gone(worker)
end

-- Expired leases: the holder stalled or died. The stream entry was acknowledged when the task
-- was first leased, so the lease set is what finds these.
for _, q in ipairs(queues) do
  local lkey = NS .. 'wf-leases:' .. q
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', lkey, '-inf', now, 'LIMIT', 0, limit)) do
    local p = split(m)
    local key = ekey('instance', p[1], p[2])
    local h = redis.call('HMGET', key, 'state', 'token', 'until', 'worker', 'sticky')
    if h[1] ~= '0' or not h[2] then
      redis.call('ZREM', lkey, m)
    elseif tonumber(h[3]) <= now and not sticky_elsewhere(h[4], h[5]) and #tasks < want then
      tasks[#tasks + 1] = lease(p[1], p[2], key, q)
    end
  end
end

-- Try to lease the execution behind a stream entry that this worker holds.
local function try_entry(stream, id, fields)
  if not fields then  -- deleted while pending
    redis.call('XACK', stream, GROUP, id)
    return nil
  end
  local f = to_map(fields)
  local iid, eid = f['i'], f['e']
  local key = ekey('instance', iid, eid)
  local h = redis.call('HMGET', key, 'state', 'qk', 'qid', 'token', 'until', 'worker', 'sticky', 'queue', 'buntil')
  if h[1] ~= '0' or h[2] ~= stream or h[3] ~= id then  -- stale: not this execution's entry
    drop_entry(stream, id)
    return nil
  end
  if h[9] and tonumber(h[9]) > now then  -- blocked: the wf-blocked set queues it at its retry time
    unqueue(iid, eid, key)
    redis.call('ZADD', NS .. 'wf-blocked', h[9], member(iid, eid))
    return nil
  end
  if h[4] and tonumber(h[5]) > now then  -- leased through the lease set meanwhile
    redis.call('XACK', stream, GROUP, id)
    return nil
  end
  local queue = h[8]
  if not serves[queue] then  -- a sticky hand-off for a queue this poller does not serve
    unqueue(iid, eid, key)
    enqueue(iid, eid, now, true)
    return nil
  end
  if sticky_elsewhere(h[6], h[7]) then  -- belongs in the sticky worker's stream
    unqueue(iid, eid, key)
    enqueue(iid, eid, now, false)
    return nil
  end
  if redis.call('LLEN', ekey('pending', iid, eid)) == 0 then  -- nothing left to do
    unqueue(iid, eid, key)
    redis.call('SREM', NS .. 'wf-queued:' .. queue, member(iid, eid))
    return nil
  end
  redis.call('XACK', stream, GROUP, id)
  return lease(iid, eid, key, queue)
end

-- Put back an entry this worker holds but will not work on now, at the stream's end.
local function give_back(stream, id, fields)
  if not fields then
    redis.call('XACK', stream, GROUP, id)
    return
  end
  local f = to_map(fields)
  local key = ekey('instance', f['i'], f['e'])
  local h = redis.call('HMGET', key, 'qk', 'qid')
  if h[1] == stream and h[2] == id then
    unqueue(f['i'], f['e'], key)
    enqueue(f['i'], f['e'], now, false)
  else
    drop_entry(stream, id)
  end
end

claim_from_streams(streams, 2, me, lock, limit, want, tasks,
  function(_, stream, id, fields) return try_entry(stream, id, fields) end, give_back)
if #tasks > 0 then
  return {'task', unpack(tasks)}
end

local wake = next_after(NS .. 'future-events', now, nil)
wake = next_after(skey, now, wake)
wake = next_after(NS .. 'wf-blocked', now, wake)
for _, q in ipairs(queues) do
  wake = next_after(NS .. 'wf-leases:' .. q, now, wake)
end
for i = 2, #streams do
  wake = next_claimable(streams[i], now, lock, wake)
end
if wake then
  return {'none', wake - now}
end
return {'none', -1}
