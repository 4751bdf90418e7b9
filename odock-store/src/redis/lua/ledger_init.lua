-- Creates a window's counters from the database's durable totals, unless another replica did
-- first: used = the durable used, nothing reserved.
--
-- KEYS: 1 the window. ARGV: 1 database row id, 2 used, 3 kind (budget|quota), 4 metric ('' for
--   budgets), 5 how long the counters are kept (ms: until a while after the window's end).
-- Returns 1 when created, 0 when they existed.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'used', ARGV[2], 'reserved', '0', 'sql', ARGV[1], 'kind', ARGV[3],
  'metric', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
