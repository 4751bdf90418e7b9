-- Adds actual usage to windows without a hold: the settlement of a request admitted while Redis
-- was unreachable under the fail-open policy.
-- KEYS: 1 the dirty windows, 2.. the windows. ARGV: 1 actual amounts by metric as JSON.
-- Returns {1, (window, used after, added)...} done, or {3, window...} windows missing (rebuild them and call again).
local missing = {3}
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then table.insert(missing, KEYS[i]) end
end
if #missing > 1 then return missing end
local actual = cjson.decode(ARGV[1])
local reply = {1}
for i = 2, #KEYS do
  local used = actual[redis.call('HGET', KEYS[i], 'metric') or ''] or 0
  if used > 0 then
    local total = redis.call('HINCRBY', KEYS[i], 'used', string.format('%d', used))
    table.insert(reply, KEYS[i])
    table.insert(reply, total)
    table.insert(reply, used)
  end
  redis.call('SADD', KEYS[1], KEYS[i])
end
return reply
