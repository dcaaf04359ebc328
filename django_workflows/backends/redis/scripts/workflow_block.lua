-- block_workflow_task: give up a workflow task the code cannot run, without committing anything
-- (history and pending events stay), and keep it away from every worker until its retry time.
-- ARGV: iid, eid, token, error JSON, first delay ms, longest delay ms.
-- Returns {'ok', since ms, attempts, retry-at ms} or {'lost'}.
local iid, eid, token, err = arg(), arg(), arg(), arg()
local first, longest = tonumber(arg()), tonumber(arg())
local key = ekey('instance', iid, eid)
local now = now_ms()
local h = held(key, token, now, 'queue', 'state', 'bsince')
if not h or h[4] ~= '0' then
  return {'lost'}
end
local attempts = redis.call('HINCRBY', key, 'battempts', 1)
-- first * 2^(attempts - 1), capped (the exponent too, so it cannot overflow).
local delay = math.min(first * math.pow(2, math.min(attempts - 1, 40)), longest)
local since = tonumber(h[5]) or now
local retry_at = now + math.floor(delay)
redis.call('HSET', key, 'berror', err, 'bsince', since, 'buntil', retry_at)
redis.call('HDEL', key, 'token', 'until', 'sticky')
redis.call('ZREM', NS .. 'wf-leases:' .. h[3], member(iid, eid))
unqueue(iid, eid, key)
redis.call('ZADD', NS .. 'wf-blocked', retry_at, member(iid, eid))
return {'ok', since, attempts, retry_at}
