-- Ends an admitted request: settles its windows' holds ('settle': actual usage into used) or
-- releases them ('release'; 'sweep' only when the lease expired before now), marks the lease
-- closed so doing it again changes nothing, and (settle and release) gives back its concurrency
-- slots and corrects its token windows from the estimate to the actual count.
--
-- KEYS: 1 the lease (hash), 2 the lease deadlines (sorted set), 3 the dirty windows (set), then
--   ARGV[6] windows the request holds, then ARGV[7] concurrency sets, then its token windows.
-- ARGV: 1 mode, 2 now ms, 3 actual amounts by metric as JSON ({"": cost} for budgets), 4 member,
--   5 how long a closed lease is remembered (ms), 6 window count, 7 concurrency set count,
--   8 estimated tokens, 9 actual tokens, 10 now µs.
-- Returns {1, (window, used after, added)...} done (the windows whose spend grew), {0} the lease
--   was not live (already closed or swept), {3, window...} windows missing (settle only: rebuild
--   them from the database and call again; nothing was written).
local lease, deadlines, dirty = KEYS[1], KEYS[2], KEYS[3]
local mode, now = ARGV[1], tonumber(ARGV[2])
local member = ARGV[4]
local windows, sets = tonumber(ARGV[6]), tonumber(ARGV[7])

local function rates()
  if mode == 'sweep' then return end
  for i = 4 + windows, 3 + windows + sets do
    redis.call('ZREM', KEYS[i], member)
  end
  local estimated, actual = tonumber(ARGV[8]), tonumber(ARGV[9])
  local second = math.floor(tonumber(ARGV[10]) / 1000000)
  for i = 4 + windows + sets, #KEYS do
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
end

if windows == 0 and mode ~= 'sweep' then
  rates()
  return {1}
end

local actual = cjson.decode(ARGV[3])
local function count(window, reply)
  local used = actual[redis.call('HGET', window, 'metric') or ''] or 0
  if used > 0 then
    local total = redis.call('HINCRBY', window, 'used', string.format('%d', used))
    table.insert(reply, window)
    table.insert(reply, total)
    table.insert(reply, used)
  end
end

local function declared_missing()
  local missing = {3}
  for i = 4, 3 + windows do
    if redis.call('EXISTS', KEYS[i]) == 0 then table.insert(missing, KEYS[i]) end
  end
  return missing
end

local function close(status)
  redis.call('HSET', lease, 'status', status)
  redis.call('PEXPIRE', lease, ARGV[5])
  redis.call('ZREM', deadlines, member)
  rates()
end

local live = redis.call('HGET', lease, 'status')
if live ~= 'R' then
  if mode == 'settle' and live ~= 'S' then
    -- The hold was swept (its lease expired) or lost with Redis' data: the request's usage still
    -- counts, once, in the windows it was admitted in.
    local missing = declared_missing()
    if #missing > 1 then return missing end
    local reply = {1}
    for i = 4, 3 + windows do
      count(KEYS[i], reply)
      redis.call('SADD', dirty, KEYS[i])
    end
    close('S')
    return reply
  end
  redis.call('ZREM', deadlines, member)
  rates()
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

local reply = {1}
for _, hold in ipairs(holds) do
  local window = hold[1]
  if redis.call('EXISTS', window) == 1 then
    if hold[2] ~= '0' then
      local reserved = redis.call('HINCRBY', window, 'reserved', '-' .. hold[2])
      if reserved < 0 then redis.call('HSET', window, 'reserved', '0') end
    end
    if mode == 'settle' then count(window, reply) end
    redis.call('SADD', dirty, window)
  end
end
if mode == 'settle' then close('S') else close('X') end
return reply
