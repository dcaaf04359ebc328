-- heartbeat_worker. ARGV: worker id, tasks in flight, ttl ms. Returns 1, or 0 when the entry
-- expired (the worker registers again).
local id, in_flight, ttl = arg(), arg(), tonumber(arg())
local now = now_ms()
local key = NS .. 'worker:' .. id
if redis.call('EXISTS', key) == 0 then
  redis.call('ZREM', NS .. 'workers', id)
  return 0
end
redis.call('HSET', key, 'heartbeat', now, 'in_flight', in_flight)
redis.call('PEXPIRE', key, ttl)
redis.call('ZADD', NS .. 'workers', now + ttl, id)
return 1
