-- Admits one request against every matching budget and quota window and every scope's rate
-- limits in one step, all or nothing: every decision is taken before anything is written.
--
-- KEYS: 1 the request's lease (hash), 2 the lease deadlines (sorted set), 3 the dirty windows
--   (set, for the database flusher), then 4 per scope (GCRA per second, GCRA per minute, token
--   buckets: hash second -> tokens, concurrency leases: sorted set member -> expiry ms), then the
--   windows (hash: used, reserved, kind, metric, rule, start, end).
-- ARGV: 1 now µs, 2 tokens, 3 member (lease and concurrency-slot id), 4 scope count, 5 lease
--   expiry ms, then 6 per scope (rps, burst, rpm, tpm, max_concurrent, ttl_ms), then 3 per window
--   (limit, amount to hold, mode: 0 used + reserved + amount <= limit, 1 used < limit).
-- Returns {1, rps left, rpm left, tpm left (per scope; -1 = no such limit)...} admitted,
--   {0, scope index, limit (1 rps, 2 rpm, 3 tpm, 4 concurrency), retry µs} refused by a rate,
--   {2, window index} refused by a window, {3, window index...} windows missing (rebuild them
--   from the database and call again).
local lease, deadlines, dirty = KEYS[1], KEYS[2], KEYS[3]
local now = tonumber(ARGV[1])
local tokens = tonumber(ARGV[2])
local member = ARGV[3]
local scopes = tonumber(ARGV[4])
local windows = #KEYS - 3 - scopes * 4
local first_window = 3 + scopes * 4
local first_window_arg = 5 + scopes * 6
local now_ms = math.floor(now / 1000)
local second = math.floor(now / 1000000)

local missing = {3}
for i = 1, windows do
  if redis.call('EXISTS', KEYS[first_window + i]) == 0 then table.insert(missing, i) end
end
if #missing > 1 then return missing end

for i = 1, windows do
  local a = first_window_arg + (i - 1) * 3
  local limit, amount, mode = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), ARGV[a + 3]
  local key = KEYS[first_window + i]
  local used = tonumber(redis.call('HGET', key, 'used') or '0')
  local reserved = tonumber(redis.call('HGET', key, 'reserved') or '0')
  local admits
  if mode == '1' then
    admits = used < limit
  else
    admits = used + reserved + amount <= limit
  end
  if not admits then return {2, i} end
end

local function gcra(key, rate, period_us, burst)
  -- At least 1 µs: a limit above one request per microsecond would otherwise get a zero
  -- interval and no tolerance, refusing any caller whose clock reading lags the last one.
  local interval = math.max(math.floor(period_us / rate), 1)
  local tolerance = interval * (math.max(burst, 1) - 1)
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  if tat > now + tolerance then
    return nil, tat - tolerance - now
  end
  local nxt = tat + interval
  local left = 0
  if now + tolerance >= nxt then
    left = math.floor((now + tolerance - nxt) / interval) + 1
  end
  return {nxt, left}
end

local writes = {}
local reply = {1}
for i = 0, scopes - 1 do
  local k = 3 + i * 4
  local a = 5 + i * 6
  local rps, burst, rpm = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local tpm, max_conc = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])
  local checks = {{KEYS[k + 1], rps, 1000000, burst, 1}, {KEYS[k + 2], rpm, 60000000, rpm, 2}}
  for _, c in ipairs(checks) do
    if c[2] > 0 then
      local decided, retry = gcra(c[1], c[2], c[3], c[4])
      if not decided then
        return {0, i + 1, c[5], retry}
      end
      table.insert(writes, {'gcra', c[1], decided[1]})
      table.insert(reply, decided[2])
    else
      table.insert(reply, -1)
    end
  end
  if tpm > 0 then
    local buckets = redis.call('HGETALL', KEYS[k + 3])
    local used, oldest = 0, nil
    for j = 1, #buckets, 2 do
      local s = tonumber(buckets[j])
      if s + 60 > second then
        used = used + tonumber(buckets[j + 1])
        if not oldest or s < oldest then oldest = s end
      else
        redis.call('HDEL', KEYS[k + 3], buckets[j])
      end
    end
    if used + tokens > tpm then
      local wait = 60
      if oldest then wait = math.max(oldest + 60 - second, 1) end
      return {0, i + 1, 3, wait * 1000000}
    end
    table.insert(writes, {'tokens', KEYS[k + 3]})
    table.insert(reply, tpm - used - tokens)
  else
    table.insert(reply, -1)
  end
  if max_conc > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[k + 4], '-inf', string.format('%d', now_ms))
    if redis.call('ZCARD', KEYS[k + 4]) >= max_conc then
      local soonest = redis.call('ZRANGE', KEYS[k + 4], 0, 0, 'WITHSCORES')
      local wait = math.max((tonumber(soonest[2]) - now_ms) * 1000, 1000000)
      return {0, i + 1, 4, wait}
    end
    table.insert(writes, {'lease', KEYS[k + 4], tonumber(ARGV[a + 6])})
  end
end

for _, w in ipairs(writes) do
  if w[1] == 'gcra' then
    redis.call('SET', w[2], string.format('%.0f', w[3]), 'PX', math.floor((w[3] - now) / 1000) + 1000)
  elseif w[1] == 'tokens' then
    redis.call('HINCRBY', w[2], string.format('%d', second), string.format('%d', tokens))
    redis.call('PEXPIRE', w[2], 120000)
  else
    redis.call('ZADD', w[2], string.format('%d', now_ms + w[3]), member)
    redis.call('PEXPIRE', w[2], w[3] + 60000)
  end
end

if windows > 0 then
  local holds = {}
  for i = 1, windows do
    local key = KEYS[first_window + i]
    local amount = ARGV[first_window_arg + (i - 1) * 3 + 2]
    redis.call('HINCRBY', key, 'reserved', amount)
    redis.call('SADD', dirty, key)
    table.insert(holds, {key, amount})
  end
  redis.call('HSET', lease, 'status', 'R', 'expires', ARGV[5], 'holds', cjson.encode(holds))
  redis.call('ZADD', deadlines, ARGV[5], member)
end
return reply
