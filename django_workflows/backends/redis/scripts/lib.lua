-- Helpers shared by every script of the Redis backend; the loader puts this file in front of
-- each script. ARGV[1] is always the key namespace (the configured prefix + "workflows:").
-- Keys are built here from ids passed in ARGV, as go-workflows' scripts do (so, like
-- go-workflows, the backend does not run on Redis Cluster). Lease times come from the server
-- clock (TIME), never from the workers'.

local NS = ARGV[1]
local GROUP = 'workers'
-- A worker's sticky stream lives this long after its last poll or hand-off (milliseconds);
-- stale entries in it are moved to the queue stream by the sticky-expiry set anyway.
local STICKY_STREAM_TTL = 3600000

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function ekey(kind, iid, eid)
  return NS .. kind .. ':' .. iid .. ':' .. eid
end

local function member(iid, eid)
  return iid .. ':' .. eid
end

-- Ids never contain ':' (the engine validates them), so members split unambiguously.
local function split(m)
  local parts = {}
  for part in string.gmatch(m, '[^:]+') do
    parts[#parts + 1] = part
  end
  return parts
end

local function to_map(flat)
  local map = {}
  for i = 1, #flat, 2 do
    map[flat[i]] = flat[i + 1]
  end
  return map
end

local function ensure_group(stream)
  if redis.call('EXISTS', stream) == 0 then
    redis.call('XGROUP', 'CREATE', stream, GROUP, '0', 'MKSTREAM')
  end
end

-- Remove a stream entry for good (from the group's pending list too).
local function drop_entry(stream, id)
  redis.call('XACK', stream, GROUP, id)
  redis.call('XDEL', stream, id)
end

-- A worker that stopped gracefully (workflow_release_sticky.lua) keeps no executions sticky.
local function worker_gone(worker)
  return redis.call('EXISTS', NS .. 'wf-gone:' .. worker) == 1
end

-- Queue a workflow task for an execution unless one is queued or running already: the
-- instance hash remembers its one stream entry (go-workflows' task set), so however many
-- events arrive, the instance is in a queue once. While the execution is sticky to a worker
-- the entry goes to that worker's own stream, with a fallback to the queue at expiry. A
-- blocked execution is not queued before its retry time: the wf-blocked set queues it then.
local function enqueue(iid, eid, now, to_queue)
  local key = ekey('instance', iid, eid)
  local h = redis.call('HMGET', key, 'qid', 'queue', 'worker', 'sticky', 'state', 'buntil', 'delayed')
  if h[1] or h[5] ~= '0' or (h[6] and tonumber(h[6]) > now) or h[7] then
    return  -- queued already, ended, blocked until later, or not started yet (events wait for a delayed start)
  end
  local stream
  if not to_queue and h[3] and h[4] and tonumber(h[4]) > now and not worker_gone(h[3]) then
    stream = NS .. 'wf-sticky:' .. h[3]
    redis.call('ZADD', NS .. 'wf-sticky-expiry', h[4], member(iid, eid))
    ensure_group(stream)
    redis.call('PEXPIRE', stream, STICKY_STREAM_TTL)
  else
    stream = NS .. 'wf-queue:' .. h[2]
    ensure_group(stream)
  end
  local id = redis.call('XADD', stream, '*', 'i', iid, 'e', eid)
  redis.call('HSET', key, 'qk', stream, 'qid', id)
  redis.call('SADD', NS .. 'wf-queued:' .. h[2], member(iid, eid))
end

-- Take the execution's entry out of its stream without forgetting that it has work.
local function unqueue(iid, eid, key)
  local q = redis.call('HMGET', key, 'qk', 'qid')
  if q[2] then
    drop_entry(q[1], q[2])
    redis.call('HDEL', key, 'qk', 'qid')
  end
end

-- Append an event to an active execution's pending events and queue it.
local function deliver(iid, eid, event, now)
  if redis.call('HGET', ekey('instance', iid, eid), 'state') ~= '0' then
    return false
  end
  redis.call('RPUSH', ekey('pending', iid, eid), event)
  enqueue(iid, eid, now, false)
  return true
end

-- Signals and cancellations follow the instance to its active execution, atomically with the
-- lookup, so they never land on an execution that has continued as new (go-workflows #493).
local function deliver_active(iid, event, now)
  local eid = redis.call('GET', NS .. 'active:' .. iid)
  if eid then
    deliver(iid, eid, event, now)
  end
  return eid
end

-- An event that becomes visible later (a timer) waits in the future-events set.
local function add_future(iid, eid, event_id, at, event, now)
  if at <= now then
    return deliver(iid, eid, event, now)
  end
  redis.call('HSET', ekey('future', iid, eid), event_id, event)
  redis.call('ZADD', NS .. 'future-events', at, iid .. ':' .. eid .. ':' .. event_id)
  return true
end

local function drop_futures(iid, eid)
  local fkey = ekey('future', iid, eid)
  local ids = redis.call('HKEYS', fkey)
  for _, event_id in ipairs(ids) do
    redis.call('ZREM', NS .. 'future-events', iid .. ':' .. eid .. ':' .. event_id)
  end
  redis.call('DEL', fkey)
end

-- A delayed start (start_delay) that is due: its start event goes in front of the events that
-- waited for it, and the execution is queued.
local function start_delayed(iid, eid, now)
  local key = ekey('instance', iid, eid)
  local event_id = redis.call('HGET', key, 'delayed')
  if not event_id then
    return
  end
  local fkey = ekey('future', iid, eid)
  local event = redis.call('HGET', fkey, event_id)
  redis.call('HDEL', key, 'delayed')
  redis.call('HDEL', fkey, event_id)
  redis.call('ZREM', NS .. 'future-events', iid .. ':' .. eid .. ':' .. event_id)
  if event and redis.call('HGET', key, 'state') == '0' then
    redis.call('LPUSH', ekey('pending', iid, eid), event)
    enqueue(iid, eid, now, false)
  end
end

-- Move future events that are due into their executions' pending events.
local function move_due_futures(now, limit)
  local zkey = NS .. 'future-events'
  local due = redis.call('ZRANGEBYSCORE', zkey, '-inf', now, 'LIMIT', 0, limit)
  for _, m in ipairs(due) do
    local p = split(m)
    if redis.call('HGET', ekey('instance', p[1], p[2]), 'delayed') == p[3] then
      start_delayed(p[1], p[2], now)
    else
      redis.call('ZREM', zkey, m)
      local fkey = ekey('future', p[1], p[2])
      local event = redis.call('HGET', fkey, p[3])
      if event then
        redis.call('HDEL', fkey, p[3])
        deliver(p[1], p[2], event, now)
      end
    end
  end
end

-- Create an execution with its pending start event; false if the instance id has an active
-- execution or this execution exists already. ``start`` holds the start event's id, its delay
-- (ms from now, start_delay; 0: none) and the execution timeout (ms from the start, -1: none,
-- and in seconds as given).
local function create_instance(iid, eid, inst, name, queue, meta, started, now, start)
  local akey = NS .. 'active:' .. iid
  local key = ekey('instance', iid, eid)
  if redis.call('EXISTS', akey) == 1 or redis.call('EXISTS', key) == 1 then
    return false
  end
  local order = redis.call('INCR', NS .. 'creation-seq')
  redis.call('HSET', key, 'inst', inst, 'name', name, 'queue', queue, 'meta', meta, 'state', '0',
    'created', now, 'seq', 0, 'order', order)
  redis.call('SET', akey, eid)
  local xkey = NS .. 'executions:' .. iid
  redis.call('ZADD', xkey, order, eid)
  redis.call('PERSIST', xkey)
  redis.call('SADD', NS .. 'instances-active', iid)
  redis.call('SADD', NS .. 'wf-queues', queue)
  local begins = now
  if start.delay > 0 then
    begins = now + start.delay
    redis.call('HSET', key, 'delayed', start.id, 'start_at', begins)
    redis.call('HSET', ekey('future', iid, eid), start.id, started)
    redis.call('ZADD', NS .. 'future-events', begins, iid .. ':' .. eid .. ':' .. start.id)
  else
    redis.call('RPUSH', ekey('pending', iid, eid), started)
    enqueue(iid, eid, now, false)
  end
  if start.timeout >= 0 then
    redis.call('HSET', key, 'timeout_at', begins + start.timeout, 'timeout_s', start.seconds)
    redis.call('ZADD', NS .. 'wf-timeouts', begins + start.timeout, member(iid, eid))
  end
  return true
end

-- What block_workflow_task stored; a completed workflow task (or the end) clears it.
local function unblock(iid, eid, key)
  redis.call('HDEL', key, 'berror', 'bsince', 'battempts', 'buntil')
  redis.call('ZREM', NS .. 'wf-blocked', member(iid, eid))
end

-- Blocked executions whose retry time has come go back to their queue.
local function move_due_blocked(now, limit)
  local zkey = NS .. 'wf-blocked'
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', zkey, '-inf', now, 'LIMIT', 0, limit)) do
    redis.call('ZREM', zkey, m)
    local p = split(m)
    enqueue(p[1], p[2], now, true)
  end
end

-- End an execution: state, completion time, no lease, no queued task, no pending or future
-- events; with auto-expiration its keys get a TTL.
local function finish(iid, eid, state, now, ttl)
  local key = ekey('instance', iid, eid)
  local m = member(iid, eid)
  local queue = redis.call('HGET', key, 'queue')
  unqueue(iid, eid, key)
  unblock(iid, eid, key)
  redis.call('HSET', key, 'state', state, 'completed', now)
  redis.call('HDEL', key, 'token', 'until')
  redis.call('ZREM', NS .. 'wf-leases:' .. queue, m)
  redis.call('SREM', NS .. 'wf-queued:' .. queue, m)
  redis.call('ZREM', NS .. 'wf-sticky-expiry', m)
  redis.call('ZREM', NS .. 'wf-timeouts', m)
  redis.call('DEL', ekey('pending', iid, eid))
  drop_futures(iid, eid)
  local akey = NS .. 'active:' .. iid
  if redis.call('GET', akey) == eid then
    redis.call('DEL', akey)
    redis.call('SREM', NS .. 'instances-active', iid)
  end
  redis.call('ZADD', NS .. 'finished', now, m)
  if ttl > 0 then
    redis.call('PEXPIRE', key, ttl)
    redis.call('PEXPIRE', ekey('history', iid, eid), ttl)
    redis.call('PEXPIRE', ekey('activities', iid, eid), ttl)
    if redis.call('EXISTS', akey) == 0 then
      redis.call('PEXPIRE', NS .. 'executions:' .. iid, ttl)
    end
    -- Executions that finished longer ago than the TTL have expired by now.
    redis.call('ZREMRANGEBYSCORE', NS .. 'finished', '-inf', now - ttl)
  end
end

-- Delete a finished execution's keys (removal, and remove_continued_as_new_instances).
local function remove_execution(iid, eid)
  drop_futures(iid, eid)
  redis.call('DEL', ekey('instance', iid, eid), ekey('history', iid, eid), ekey('pending', iid, eid),
    ekey('activities', iid, eid))
  redis.call('ZREM', NS .. 'executions:' .. iid, eid)
  redis.call('ZREM', NS .. 'finished', member(iid, eid))
end

-- Delete an activity task and its queue entry.
local function delete_activity(aid, h_queue, h_qk, h_qid, h_iid, h_eid)
  if h_qid then
    drop_entry(h_qk, h_qid)
  end
  redis.call('ZREM', NS .. 'act-leases:' .. h_queue, aid)
  redis.call('ZREM', NS .. 'act-deadlines', aid)
  redis.call('SREM', ekey('activities', h_iid, h_eid), aid)
  redis.call('DEL', NS .. 'activity:' .. aid)
end

local function earlier(at, wake)
  if at ~= nil and (wake == nil or at < wake) then
    return at
  end
  return wake
end

-- The earliest score after now in a sorted set (for how long a poller may block).
local function next_after(zkey, now, wake)
  local r = redis.call('ZRANGEBYSCORE', zkey, '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  return earlier(tonumber(r[2]), wake)
end

-- When the oldest entry a consumer holds without leasing it becomes claimable (XAUTOCLAIM).
local function next_claimable(stream, now, lock, wake)
  local oldest = redis.call('XPENDING', stream, GROUP, '-', '+', 1)
  return earlier(oldest[1] and now + math.max(1, lock - tonumber(oldest[1][3])), wake)
end

-- The fields of a task hash (after 'token' and 'until') if the token holds an unexpired lease.
local function held(key, token, now, ...)
  local h = redis.call('HMGET', key, 'token', 'until', ...)
  if h[1] ~= token or tonumber(h[2]) <= now then
    return nil
  end
  return h
end

-- Activity timeouts. An activity hash keeps the deadline (server ms) of each timeout that
-- applies to its attempt now (start_by: schedule-to-start, close_by: schedule-to-close, run_by:
-- start-to-close, hb_by: heartbeat), the durations to start from a lease (stc, hbt ms), and the
-- earliest deadline, also in the act-deadlines sorted set for the sweep.
local DEADLINES = {'start_by', 'close_by', 'run_by', 'hb_by'}
local TIMEOUT_TYPES = {start_by = 'schedule_to_start', close_by = 'schedule_to_close', run_by = 'start_to_close',
  hb_by = 'heartbeat'}

local function set_deadline(akey, aid)
  local d = redis.call('HMGET', akey, unpack(DEADLINES))
  local first = nil
  for i = 1, #DEADLINES do
    local at = tonumber(d[i])
    if at and (not first or at < first) then
      first = at
    end
  end
  if first then
    redis.call('HSET', akey, 'deadline', first)
    redis.call('ZADD', NS .. 'act-deadlines', first, aid)
  else
    redis.call('HDEL', akey, 'deadline')
    redis.call('ZREM', NS .. 'act-deadlines', aid)
  end
end

-- Whether none of the attempt's timeouts has passed.
local function in_time(akey, now)
  local deadline = redis.call('HGET', akey, 'deadline')
  return not deadline or tonumber(deadline) > now
end

-- Append an event (JSON without a sequence id) to an execution's history.
local function push_history(iid, eid, event)
  local seq = redis.call('HINCRBY', ekey('instance', iid, eid), 'seq', 1)
  -- The sequence id is only known here; JSON keys are unordered, so it goes in front.
  redis.call('RPUSH', ekey('history', iid, eid), '{"sid":' .. seq .. ',' .. string.sub(event, 2))
end

-- 'notfound' or 'finished' unless the execution exists and is active.
local function inactive(key)
  local state = redis.call('HGET', key, 'state')
  if not state then
    return 'notfound'
  end
  if state ~= '0' then
    return 'finished'
  end
  return nil
end

-- Claim through task streams: first entries of consumers that died before leasing them
-- (XAUTOCLAIM, from the stream at index first_claimable on), then entries this consumer holds
-- (a blocking read put them there), then new ones, until `out` holds `want` tasks.
-- try(index, stream, id, fields) returns a task or nil; once `out` is full, give_back(stream, id,
-- fields) returns the other held entries to their stream. New entries are read no more than
-- are still wanted, so none of them needs giving back.
local function claim_from_streams(streams, first_claimable, me, lock, limit, want, out, try, give_back)
  for i = first_claimable, #streams do
    redis.call('XAUTOCLAIM', streams[i], GROUP, me, lock, '0-0', 'COUNT', limit)
  end
  for i, s in ipairs(streams) do
    local r = redis.call('XREADGROUP', 'GROUP', GROUP, me, 'COUNT', limit, 'STREAMS', s, '0')
    if r then
      for _, entry in ipairs(r[1][2]) do
        if #out >= want then
          give_back(s, entry[1], entry[2])
        else
          out[#out + 1] = try(i, s, entry[1], entry[2])
        end
      end
    end
  end
  for i, s in ipairs(streams) do
    local seen = 0
    while #out < want and seen < limit do
      local r = redis.call('XREADGROUP', 'GROUP', GROUP, me, 'COUNT', want - #out, 'STREAMS', s, '>')
      if not r then
        break
      end
      for _, entry in ipairs(r[1][2]) do
        seen = seen + 1
        out[#out + 1] = try(i, s, entry[1], entry[2])
      end
    end
  end
end

-- Lease an execution's workflow task to worker `me` under `token` (a poll, or an activity
-- completion handing the workflow on) and return it as claims reply it: {iid, eid, instance
-- JSON, name, queue, metadata JSON, last sequence id, token, {pending event JSON...}}.
local function lease_workflow(iid, eid, key, queue, me, token, now, lock)
  redis.call('HSET', key, 'token', token, 'until', now + lock, 'worker', me)
  redis.call('ZADD', NS .. 'wf-leases:' .. queue, now + lock, member(iid, eid))
  local h = redis.call('HMGET', key, 'inst', 'name', 'meta', 'seq')
  return {iid, eid, h[1], h[2], queue, h[3], h[4], token, redis.call('LRANGE', ekey('pending', iid, eid), 0, -1)}
end

-- Lease an activity task to worker `me` under `token` (a poll, or the completion of the
-- workflow task that schedules it); returns its lease count. Taken from the queue:
-- schedule-to-start is over; start-to-close starts at the attempt's first lease (a later lease
-- after a crash keeps it) and the heartbeat deadline at every one.
local function lease_activity(aid, akey, queue, me, token, now, lock)
  local leases = redis.call('HINCRBY', akey, 'leases', 1)
  redis.call('HSET', akey, 'token', token, 'until', now + lock, 'worker', me)
  redis.call('ZADD', NS .. 'act-leases:' .. queue, now + lock, aid)
  local h = redis.call('HMGET', akey, 'stc', 'hbt', 'run_by', 'start_by')
  if h[1] or h[2] or h[4] then
    redis.call('HDEL', akey, 'start_by')
    if h[1] and not h[3] then redis.call('HSET', akey, 'run_by', now + tonumber(h[1])) end
    if h[2] then redis.call('HSET', akey, 'hb_by', now + tonumber(h[2])) end
    set_deadline(akey, aid)
  end
  return leases
end

-- A cursor over ARGV, for scripts with variable-length arguments.
local argi = 1
local function arg()
  argi = argi + 1
  return ARGV[argi]
end

-- The start arguments of create_instance, read from ARGV: event id, delay ms, timeout ms (-1:
-- none), timeout seconds.
local function start_args()
  return {id = arg(), delay = tonumber(arg()), timeout = tonumber(arg()), seconds = arg()}
end
