-- get_activity_tasks, without blocking. ARGV: worker name, lock timeout ms, new lease token (one
-- for the batch), scan limit, most tasks wanted, max leases, queue names...
-- Returns {'task', {task...}, {abandoned...}}: leased tasks as {activity id, instance JSON,
-- queue, event JSON, token, lease count, heartbeat details or ''}, and activities that were
-- leased max-leases times already (their workers keep dying: the caller fails them) as
-- {activity id, instance JSON, event JSON, lease count, heartbeat details or ''}; or {'none',
-- ms until the next lease expiry or -1}. An activity whose timeout passed is left to the sweep
-- (activity_expired).
local me, lock, token, limit, want, max_leases = arg(), tonumber(arg()), arg(), tonumber(arg()), tonumber(arg()),
  tonumber(arg())
local queues = {}
while argi < #ARGV do
  queues[#queues + 1] = arg()
end
local now = now_ms()
local streams = {}
for _, q in ipairs(queues) do
  local s = NS .. 'act-queue:' .. q
  ensure_group(s)
  streams[#streams + 1] = s
end

local tasks, abandoned = {}, {}

local function lease(aid, akey, queue)
  local leases = lease_activity(aid, akey, queue, me, token, now, lock)
  local h = redis.call('HMGET', akey, 'inst', 'event', 'details')
  return {aid, h[1], queue, h[2], token, leases, h[3] or ''}
end

local function abandon(aid, akey)
  local h = redis.call('HMGET', akey, 'inst', 'event', 'leases', 'details')
  abandoned[#abandoned + 1] = {aid, h[1], h[2], tonumber(h[3]), h[4] or ''}
end

-- Expired leases (fenced: the old holder's token stops working).
for _, q in ipairs(queues) do
  local lkey = NS .. 'act-leases:' .. q
  for _, aid in ipairs(redis.call('ZRANGEBYSCORE', lkey, '-inf', now, 'LIMIT', 0, limit)) do
    if #tasks >= want then
      break
    end
    local akey = NS .. 'activity:' .. aid
    local h = redis.call('HMGET', akey, 'token', 'until', 'leases')
    if not h[1] then
      redis.call('ZREM', lkey, aid)
    elseif tonumber(h[2]) <= now and in_time(akey, now) then
      if tonumber(h[3]) >= max_leases then
        abandon(aid, akey)
      else
        tasks[#tasks + 1] = lease(aid, akey, q)
      end
    end
  end
end

local function try_entry(stream, id, fields, queue)
  if not fields then
    redis.call('XACK', stream, GROUP, id)
    return nil
  end
  local aid = to_map(fields)['a']
  local akey = NS .. 'activity:' .. aid
  local h = redis.call('HMGET', akey, 'qk', 'qid', 'token', 'until', 'leases')
  if h[1] ~= stream or h[2] ~= id then
    drop_entry(stream, id)
    return nil
  end
  if h[3] and tonumber(h[4]) > now then
    redis.call('XACK', stream, GROUP, id)
    return nil
  end
  if not in_time(akey, now) then  -- timed out while queued: the sweep fails it
    drop_entry(stream, id)
    redis.call('HDEL', akey, 'qk', 'qid')
    return nil
  end
  if tonumber(h[5]) >= max_leases then
    abandon(aid, akey)  -- the entry stays pending until the failure is recorded
    return nil
  end
  redis.call('XACK', stream, GROUP, id)
  return lease(aid, akey, queue)
end

local function give_back(stream, id, fields)
  local aid = fields and to_map(fields)['a']
  local akey = NS .. 'activity:' .. (aid or '')
  if aid and redis.call('HGET', akey, 'qid') == id then
    drop_entry(stream, id)
    redis.call('HSET', akey, 'qid', redis.call('XADD', stream, '*', 'a', aid))
  else
    drop_entry(stream, id)
  end
end

claim_from_streams(streams, 1, me, lock, limit, want, tasks,
  function(i, stream, id, fields) return try_entry(stream, id, fields, queues[i]) end, give_back)
if #tasks > 0 or #abandoned > 0 then
  return {'task', tasks, abandoned}
end

local wake = nil
for _, q in ipairs(queues) do
  wake = next_after(NS .. 'act-leases:' .. q, now, wake)
end
for _, s in ipairs(streams) do
  wake = next_claimable(s, now, lock, wake)
end
if wake then
  return {'none', wake - now}
end
return {'none', -1}
