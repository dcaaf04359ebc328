-- register_worker. ARGV: worker id, entry JSON, ttl ms. The entry's hash and its place in the
-- 'workers' set (scored by expiry) expire together, by the server's clock.
local id, entry, ttl = arg(), arg(), tonumber(arg())
local now = now_ms()
local key = NS .. 'worker:' .. id
redis.call('HSET', key, 'entry', entry, 'heartbeat', now, 'in_flight', 0)
redis.call('PEXPIRE', key, ttl)
redis.call('ZADD', NS .. 'workers', now + ttl, id)
return 'ok'
