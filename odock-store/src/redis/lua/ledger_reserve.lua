-- Admits one request in every matching budget or quota window at once, all or nothing.
--
-- KEYS: 1 the request's lease (hash), 2 the lease deadlines (sorted set), 3 the dirty windows
--   (set, for the database flusher), 4.. the windows (hash: used, reserved, sql, kind, metric).
-- ARGV: 1 now ms, 2 lease expiry ms, 3 lease member (id), 4 estimate (recorded), then 3 per
--   window: limit, amount to hold, mode (0: used + reserved + amount <= limit, 1: used < limit).
-- Returns {1} admitted, {2, expires, window...} a live hold already exists for this request,
--   {3, index...} windows missing (rebuild them from the database and call again),
--   {0, index} refused by that window.
local lease, deadlines, dirty = KEYS[1], KEYS[2], KEYS[3]
local windows = #KEYS - 3

if redis.call('HGET', lease, 'status') == 'R' then
  local reply = {2, tonumber(redis.call('HGET', lease, 'expires'))}
  for _, hold in ipairs(cjson.decode(redis.call('HGET', lease, 'holds'))) do
    table.insert(reply, hold[1])
  end
  return reply
end

local missing = {3}
for i = 1, windows do
  if redis.call('EXISTS', KEYS[3 + i]) == 0 then table.insert(missing, i) end
end
if #missing > 1 then return missing end

for i = 1, windows do
  local a = 4 + (i - 1) * 3
  local limit, amount, mode = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), ARGV[a + 3]
  local used = tonumber(redis.call('HGET', KEYS[3 + i], 'used') or '0')
  local reserved = tonumber(redis.call('HGET', KEYS[3 + i], 'reserved') or '0')
  local admits
  if mode == '1' then
    admits = used < limit
  else
    admits = used + reserved + amount <= limit
  end
  if not admits then return {0, i} end
end

local holds = {}
for i = 1, windows do
  local amount = ARGV[4 + (i - 1) * 3 + 2]
  redis.call('HINCRBY', KEYS[3 + i], 'reserved', amount)
  redis.call('SADD', dirty, KEYS[3 + i])
  table.insert(holds, {KEYS[3 + i], amount})
end
redis.call('HSET', lease, 'status', 'R', 'expires', ARGV[2], 'estimate', ARGV[4],
  'holds', cjson.encode(holds))
redis.call('PERSIST', lease)
redis.call('ZADD', deadlines, ARGV[2], ARGV[3])
return {1}
