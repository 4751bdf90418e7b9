-- Ends a request's hold: settles (actual into used) or releases it in every window it holds, and
-- marks the lease closed, so doing it again (or after the sweeper released it) changes nothing.
--
-- KEYS: 1 the lease (hash), 2 the lease deadlines (sorted set), 3 the dirty windows (set),
--   4.. the windows the lease holds (declared for Redis; the lease's own list is authoritative).
-- ARGV: 1 'settle' | 'release' | 'sweep' (release only if expired before ARGV[2]), 2 now ms,
--   3 actual amounts by metric as JSON ({"": n} for budgets), 4 lease member, 5 how long a
--   closed lease is remembered (ms), 6 the actual cost recorded on the lease.
-- Returns {1, (window, used after, added)...} closed (settlements list the windows whose spend
--   grew), {0} nothing to do, {3, window...} windows missing (settle only: rebuild
--   them from the database and call again). A settlement whose lease Redis lost (restart without
--   data) adds its usage to the declared windows.
local lease, deadlines, dirty = KEYS[1], KEYS[2], KEYS[3]
local mode, now = ARGV[1], tonumber(ARGV[2])

if redis.call('EXISTS', lease) == 0 then
  if mode ~= 'settle' or #KEYS == 3 then
    redis.call('ZREM', deadlines, ARGV[4])
    return {0}
  end
  -- The lease was lost with Redis' data (the windows were rebuilt with nothing reserved): the
  -- request's usage still counts, once.
  local missing = {3}
  for i = 4, #KEYS do
    if redis.call('EXISTS', KEYS[i]) == 0 then table.insert(missing, KEYS[i]) end
  end
  if #missing > 1 then return missing end
  local actual = cjson.decode(ARGV[3])
  local reply = {1}
  for i = 4, #KEYS do
    local used = actual[redis.call('HGET', KEYS[i], 'metric') or ''] or 0
    if used > 0 then
      local total = redis.call('HINCRBY', KEYS[i], 'used', string.format('%d', used))
      table.insert(reply, KEYS[i])
      table.insert(reply, total)
      table.insert(reply, used)
    end
    redis.call('SADD', dirty, KEYS[i])
  end
  redis.call('HSET', lease, 'status', 'S', 'actual', ARGV[6])
  redis.call('PEXPIRE', lease, ARGV[5])
  return reply
end
if redis.call('HGET', lease, 'status') ~= 'R' then
  redis.call('ZREM', deadlines, ARGV[4])
  return {0}
end
if mode == 'sweep' and tonumber(redis.call('HGET', lease, 'expires')) >= now then
  return {0}
end

local holds = cjson.decode(redis.call('HGET', lease, 'holds'))
if mode == 'settle' then
  local missing = {3}
  for _, hold in ipairs(holds) do
    if redis.call('EXISTS', hold[1]) == 0 then table.insert(missing, hold[1]) end
  end
  if #missing > 1 then return missing end
end

local actual = cjson.decode(ARGV[3])
local reply = {1}
for _, hold in ipairs(holds) do
  local window = hold[1]
  if redis.call('EXISTS', window) == 1 then
    if hold[2] ~= '0' then
      local reserved = redis.call('HINCRBY', window, 'reserved', '-' .. hold[2])
      if reserved < 0 then redis.call('HSET', window, 'reserved', '0') end
    end
    if mode == 'settle' then
      local used = actual[redis.call('HGET', window, 'metric') or ''] or 0
      if used > 0 then
        local total = redis.call('HINCRBY', window, 'used', string.format('%d', used))
        table.insert(reply, window)
        table.insert(reply, total)
        table.insert(reply, used)
      end
    end
    redis.call('SADD', dirty, window)
  end
end

local status = 'X'
if mode == 'settle' then status = 'S' end
redis.call('HSET', lease, 'status', status, 'actual', ARGV[6])
redis.call('PEXPIRE', lease, ARGV[5])
redis.call('ZREM', deadlines, ARGV[4])
return reply
