-- list_workers. Drops expired members, then returns {id, entry JSON, heartbeat ms, in flight}
-- for each live worker, by id.
local now = now_ms()
local zkey = NS .. 'workers'
redis.call('ZREMRANGEBYSCORE', zkey, '-inf', now)
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', zkey, '(' .. now, '+inf')) do
  local h = redis.call('HMGET', NS .. 'worker:' .. id, 'entry', 'heartbeat', 'in_flight')
  if h[1] then
    out[#out + 1] = {id, h[1], h[2], h[3]}
  end
end
return out
