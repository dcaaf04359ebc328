-- complete_workflow_task: the whole result of a workflow task in one atomic step (go-workflows'
-- CompleteWorkflowTask script), fenced by the lease token.
-- ARGV, per completion: its number of arguments, then iid, eid, token, number of consumed
--   pending events, new state, sticky timeout ms, TTL ms (0: none), remove continued-as-new
--   executions ('1'/'0'), instance JSON, the activities the completing worker takes at once
--   (lease on completion: most to lease, worker name, activity lock timeout ms, lease token,
--   n + queue names), then
--   n + executed events (JSON, with sequence ids);
--   n + schedule event ids of canceled timers;
--   n + timers as (event id, visible-at ms, JSON);
--   n + activities as (activity id, queue, JSON, schedule-to-start ms, schedule-to-close ms,
--     start-to-close ms, heartbeat ms; -1: no such timeout);
--   n + canceled activities as (activity id, 'new' or 'old', Canceled answer JSON): 'new' ones
--     were scheduled by this task and never stored; 'old' ones are dropped and answer if nobody
--     holds them, else flagged for their next heartbeat;
--   n + events for other executions, each (kind, ...): 'start' iid eid instance event name
--   queue metadata parent-iid parent-eid duplicate-event start-arguments (lib.lua start_args),
--   'active' iid event, 'exact' iid eid event.
-- Returns one reply per completion: {'ok', leased activity id...}, 'lost' (lease gone) or
-- 'rejected' (the task would end the execution while events it has not seen are waiting; the
-- lease is released and the task runs again).
--
-- Several completions may come in one call (those a worker finished at the same moment,
-- GroupCommit): each is fenced and answered on its own, as if in a call of its own.
local function complete_one()
  local iid, eid, token, consumed, state = arg(), arg(), arg(), tonumber(arg()), arg()
  local sticky, ttl, remove_can, inst = tonumber(arg()), tonumber(arg()), arg() == '1', arg()
  local take, me, alock, atoken = tonumber(arg()), arg(), tonumber(arg()), arg()
  local takes = {}
  for _ = 1, tonumber(arg()) do
    takes[arg()] = true
  end
  local leased = {'ok'}
  local key = ekey('instance', iid, eid)
  local pkey = ekey('pending', iid, eid)
  local m = member(iid, eid)
  local now = now_ms()
  local h = held(key, token, now, 'queue', 'state')
  if not h or h[4] ~= '0' then
    return 'lost'
  end
  local queue = h[3]

  local function release()
    redis.call('HDEL', key, 'token', 'until')
    redis.call('ZREM', NS .. 'wf-leases:' .. queue, m)
    unqueue(iid, eid, key)
  end

  if state ~= '0' then
    -- Never accept-then-lose: events that arrived during the task, including timers that are
    -- due but not moved yet, send the task round again.
    local unseen = redis.call('LLEN', pkey) > consumed
    if not unseen then
      for _, event_id in ipairs(redis.call('HKEYS', ekey('future', iid, eid))) do
        local at = redis.call('ZSCORE', NS .. 'future-events', iid .. ':' .. eid .. ':' .. event_id)
        if at and tonumber(at) <= now then
          unseen = true
          break
        end
      end
    end
    if unseen then
      release()
      redis.call('HDEL', key, 'sticky')
      enqueue(iid, eid, now, true)
      return 'rejected'
    end
  end

  if consumed > 0 then
    redis.call('LTRIM', pkey, consumed, -1)
  end

  local n = tonumber(arg())
  if n > 0 then
    local hkey = ekey('history', iid, eid)
    for _ = 1, n do
      redis.call('RPUSH', hkey, arg())
    end
    redis.call('HINCRBY', key, 'seq', n)
  end

  n = tonumber(arg())
  if n > 0 then
    local canceled = {}
    for _ = 1, n do
      canceled[tonumber(arg())] = true
    end
    local function is_canceled(json)
      local e = cjson.decode(json)
      return e['t'] == 'TimerFired' and canceled[tonumber(e['seid'] or 0)]
    end
    local fkey = ekey('future', iid, eid)
    local future = redis.call('HGETALL', fkey)
    for i = 1, #future, 2 do
      if is_canceled(future[i + 1]) then
        redis.call('HDEL', fkey, future[i])
        redis.call('ZREM', NS .. 'future-events', iid .. ':' .. eid .. ':' .. future[i])
      end
    end
    for _, json in ipairs(redis.call('LRANGE', pkey, 0, -1)) do
      if is_canceled(json) then
        redis.call('LREM', pkey, 1, json)
      end
    end
  end

  n = tonumber(arg())
  for _ = 1, n do
    local event_id, at, json = arg(), tonumber(arg()), arg()
    add_future(iid, eid, event_id, at, json, now)
  end

  n = tonumber(arg())
  for _ = 1, n do
    local aid, aqueue, json = arg(), arg(), arg()
    local s2s, s2c, stc, hbt = tonumber(arg()), tonumber(arg()), tonumber(arg()), tonumber(arg())
    local stream = NS .. 'act-queue:' .. aqueue
    local akey = NS .. 'activity:' .. aid
    ensure_group(stream)
    redis.call('HSET', akey, 'inst', inst, 'iid', iid, 'eid', eid, 'queue', aqueue,
      'event', json, 'leases', 0, 'qk', stream)
    if s2s >= 0 then redis.call('HSET', akey, 'start_by', now + s2s) end
    if s2c >= 0 then redis.call('HSET', akey, 'close_by', now + s2c) end
    if stc >= 0 then redis.call('HSET', akey, 'stc', stc) end
    if hbt >= 0 then redis.call('HSET', akey, 'hbt', hbt) end
    if s2s >= 0 or s2c >= 0 then set_deadline(akey, aid) end
    if #leased <= take and takes[aqueue] and in_time(akey, now) then
      -- Leased to the completing worker: it never enters the stream (no 'qid').
      lease_activity(aid, akey, aqueue, me, atoken, now, alock)
      leased[#leased + 1] = aid
    else
      redis.call('HSET', akey, 'qid', redis.call('XADD', stream, '*', 'a', aid))
    end
    redis.call('SADD', ekey('activities', iid, eid), aid)
    redis.call('SADD', NS .. 'act-queues', aqueue)
  end

  n = tonumber(arg())
  for _ = 1, n do
    local aid, kind, answer = arg(), arg(), arg()
    local akey = NS .. 'activity:' .. aid
    if kind == 'new' then
      redis.call('RPUSH', pkey, answer)
    else
      local a = redis.call('HMGET', akey, 'token', 'until', 'queue', 'qk', 'qid')
      if a[3] then
        if a[1] and tonumber(a[2]) > now and in_time(akey, now) then
          redis.call('HSET', akey, 'cancel', '1')
        else
          delete_activity(aid, a[3], a[4], a[5], iid, eid)
          redis.call('RPUSH', pkey, answer)
        end
      end
    end
  end

  release()
  unblock(iid, eid, key)  -- the code ran the task: whatever blocked it is fixed
  if sticky > 0 then
    redis.call('HSET', key, 'sticky', now + sticky)
  else
    redis.call('HDEL', key, 'sticky')
  end
  if state ~= '0' then
    -- Finish before delivering: a continue-as-new start must find no active execution.
    finish(iid, eid, state, now, ttl)
    if state == '1' and remove_can then
      remove_execution(iid, eid)
    end
  elseif redis.call('LLEN', pkey) > 0 then
    enqueue(iid, eid, now, false)
  else
    redis.call('SREM', NS .. 'wf-queued:' .. queue, m)
  end

  n = tonumber(arg())
  for _ = 1, n do
    local kind = arg()
    if kind == 'start' then
      local tiid, teid, tinst, event, name, tqueue, meta = arg(), arg(), arg(), arg(), arg(), arg(), arg()
      local piid, peid, duplicate = arg(), arg(), arg()
      local start = start_args()
      if not create_instance(tiid, teid, tinst, name, tqueue, meta, event, now, start) and duplicate ~= '' then
        deliver(piid, peid, duplicate, now)
      end
    elseif kind == 'active' then
      local tiid, event = arg(), arg()
      deliver_active(tiid, event, now)
    else
      local tiid, teid, event = arg(), arg(), arg()
      deliver(tiid, teid, event, now)
    end
  end
  return leased
end

local replies = {}
while argi < #ARGV do
  local after = tonumber(arg()) + argi
  replies[#replies + 1] = complete_one()
  argi = after  -- past what an early return ('lost', 'rejected') left unread
end
return replies
