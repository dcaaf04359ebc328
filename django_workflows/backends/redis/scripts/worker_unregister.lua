-- unregister_worker. ARGV: worker id.
local id = arg()
redis.call('DEL', NS .. 'worker:' .. id)
redis.call('ZREM', NS .. 'workers', id)
return 'ok'
