-- Gives back what an admitted request held: removes its lease from each concurrency set and
-- corrects each token window from the estimate to the actual count (an excess is taken back from
-- the newest buckets first).
--
-- KEYS: the lease sets (first `ARGV[2]` keys), then the token windows.
-- ARGV: lease_id, number of lease sets, estimated tokens, actual tokens, now_us.
local lease_id = ARGV[1]
local leases = tonumber(ARGV[2])
local estimated, actual = tonumber(ARGV[3]), tonumber(ARGV[4])
local second = math.floor(tonumber(ARGV[5]) / 1000000)
for i = 1, leases do
  redis.call('ZREM', KEYS[i], lease_id)
end
for i = leases + 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    if actual >= estimated then
      redis.call('HINCRBY', KEYS[i], string.format('%d', second), string.format('%d', actual - estimated))
    else
      local excess = estimated - actual
      local seconds = redis.call('HKEYS', KEYS[i])
      table.sort(seconds, function(x, y) return tonumber(x) > tonumber(y) end)
      for _, s in ipairs(seconds) do
        local held = tonumber(redis.call('HGET', KEYS[i], s))
        local taken = math.min(excess, held)
        redis.call('HINCRBY', KEYS[i], s, string.format('%d', -taken))
        excess = excess - taken
        if excess == 0 then break end
      end
    end
  end
end
return 1
