-- get_backlog. ARGV: scan limit. Returns {now ms, n, then per queue: queue, ready workflow
-- tasks, oldest ready workflow task ms or -1, ready activity tasks, oldest ready activity ms or -1}.
--
-- Ready: queued and not leased. Counts are the queued ones less the live leases; the oldest is
-- the first entry of the queue's stream (stream ids are the server time of XADD) whose task is
-- not leased, looked for among the first `limit` entries. Workflow tasks handed to a sticky
-- worker's own stream are counted but their age is not looked at.
local limit = tonumber(arg())
local now = now_ms()

local function oldest(stream, leased)
  for _, entry in ipairs(redis.call('XRANGE', stream, '-', '+', 'COUNT', limit)) do
    if not leased(entry[1], to_map(entry[2])) then
      return tonumber(string.match(entry[1], '^(%d+)'))
    end
  end
  return -1
end

local function workflow_leased(id, f)
  local h = redis.call('HMGET', ekey('instance', f['i'] or '', f['e'] or ''), 'qid', 'token', 'until', 'state')
  -- A stale entry (not the execution's current one) is not ready work either.
  return h[1] ~= id or h[4] ~= '0' or (h[2] and tonumber(h[3]) > now)
end

local function activity_leased(id, f)
  local h = redis.call('HMGET', NS .. 'activity:' .. (f['a'] or ''), 'qid', 'token', 'until')
  return h[1] ~= id or (h[2] and tonumber(h[3]) > now)
end

local queues = {}
for _, q in ipairs(redis.call('SMEMBERS', NS .. 'wf-queues')) do queues[q] = true end
for _, q in ipairs(redis.call('SMEMBERS', NS .. 'act-queues')) do queues[q] = true end
local rows = {}
for q, _ in pairs(queues) do
  local leased_wf = redis.call('ZCOUNT', NS .. 'wf-leases:' .. q, '(' .. now, '+inf')
  local wf = math.max(0, redis.call('SCARD', NS .. 'wf-queued:' .. q) - leased_wf)
  local wf_oldest = -1
  if wf > 0 then wf_oldest = oldest(NS .. 'wf-queue:' .. q, workflow_leased) end
  local leased_act = redis.call('ZCOUNT', NS .. 'act-leases:' .. q, '(' .. now, '+inf')
  local act = math.max(0, redis.call('XLEN', NS .. 'act-queue:' .. q) - leased_act)
  local act_oldest = -1
  if act > 0 then act_oldest = oldest(NS .. 'act-queue:' .. q, activity_leased) end
  if wf > 0 or act > 0 then
    rows[#rows + 1] = {q, wf, wf_oldest, act, act_oldest}
  end
end
local out = {now, #rows}
for _, r in ipairs(rows) do
  for _, v in ipairs(r) do out[#out + 1] = v end
end
return out
