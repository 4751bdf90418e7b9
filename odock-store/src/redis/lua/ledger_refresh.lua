-- Extends a live hold's lease (never shortens it).
-- KEYS: 1 the lease, 2 the lease deadlines. ARGV: 1 new expiry ms, 2 lease member.
if redis.call('HGET', KEYS[1], 'status') ~= 'R' then return 0 end
local expires = tonumber(redis.call('HGET', KEYS[1], 'expires'))
if tonumber(ARGV[1]) > expires then
  redis.call('HSET', KEYS[1], 'expires', ARGV[1])
  redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
end
return 1
