-- get_stats. Returns {active instances, n, queue, workflow tasks..., m, queue, activity tasks...}.
local out = {redis.call('SCARD', NS .. 'instances-active')}
local function per_queue(kind, count)
  local rows = {}
  for _, queue in ipairs(redis.call('SMEMBERS', NS .. kind .. '-queues')) do
    local c = count(queue)
    if c > 0 then
      rows[#rows + 1] = queue
      rows[#rows + 1] = c
    end
  end
  out[#out + 1] = #rows / 2
  for _, v in ipairs(rows) do
    out[#out + 1] = v
  end
end
per_queue('wf', function(queue) return redis.call('SCARD', NS .. 'wf-queued:' .. queue) end)
per_queue('act', function(queue) return redis.call('XLEN', NS .. 'act-queue:' .. queue) end)
return out
