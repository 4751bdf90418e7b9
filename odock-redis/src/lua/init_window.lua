-- Creates a window's counters from the database's durable totals, unless another replica did
-- first: used = the durable used, nothing reserved.
--
-- KEYS: 1 the window. ARGV: 1 used, 2 kind (budget|quota), 3 metric ('' for budgets), 4 rule id,
--   5 start ms, 6 end ms, 7 how long the counters are kept (ms: until a while after the end).
-- Returns 1 when created, 0 when they existed.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'used', ARGV[1], 'reserved', '0', 'kind', ARGV[2], 'metric', ARGV[3],
  'rule', ARGV[4], 'start', ARGV[5], 'end', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
return 1
