-- prepare_workflow_queues / prepare_activity_queues: create each queue's stream and consumer
-- group, and forget consumers (workers) that have been gone for a while and hold nothing, so
-- that restarts do not pile up consumers in the groups. ARGV: kind ('wf' or 'act'), queue names...
local GONE_MS = 3600000
local kind = arg()
while argi < #ARGV do
  local queue = arg()
  local stream = NS .. kind .. '-queue:' .. queue
  ensure_group(stream)
  redis.call('SADD', NS .. kind .. '-queues', queue)
  for _, row in ipairs(redis.call('XINFO', 'CONSUMERS', stream, GROUP)) do
    local consumer = to_map(row)
    if consumer['pending'] == 0 and consumer['idle'] > GONE_MS then
      redis.call('XGROUP', 'DELCONSUMER', stream, GROUP, consumer['name'])
    end
  end
end
return 'ok'
