-- Extends the leases of this replica's live holds (never shortens one).
-- KEYS: 1 the lease deadlines (sorted set), then one lease (hash) per member.
-- ARGV: 1 new expiry ms, then the members, in the order of their leases.
-- Returns how many leases were extended.
local extended = 0
for i = 2, #KEYS do
  if redis.call('HGET', KEYS[i], 'status') == 'R' then
    local expires = tonumber(redis.call('HGET', KEYS[i], 'expires'))
    if tonumber(ARGV[1]) > expires then
      redis.call('HSET', KEYS[i], 'expires', ARGV[1])
      redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i])
    end
    extended = extended + 1
  end
end
return extended
