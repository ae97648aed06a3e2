-- Recount some of a night's check-in records in one shard, from the database (tourapi live rebuild).
-- Atomic per call, and idempotent per record like checkin.lua (the counted-records set guards both), so
-- a check-in counted by a request while a rebuild runs is counted once, whichever of the two comes first.
-- KEYS: 1 shard check-ins hash (night), 2 shard counted-records set (night), 3.. visitor HyperLogLogs (night)
-- ARGV: 1 "1" to empty the hash and the set first (the first call for the shard), 2 counter ttl,
--       then 4 values per record: record id, poi, checkpoint id, visitor token, and the KEYS index of the
--       POI's HyperLogLog as a fifth
-- Returns how many records it counted.
local checkins, counted, ttl = KEYS[1], KEYS[2], ARGV[2]
if ARGV[1] == '1' then
  redis.call('DEL', checkins, counted)
end
local n = 0
for i = 3, #ARGV, 5 do
  if redis.call('SADD', counted, ARGV[i]) == 1 then
    local poi = ARGV[i + 1]
    redis.call('HINCRBY', checkins, poi, '1')
    redis.call('HINCRBY', checkins, poi .. '|' .. ARGV[i + 2], '1')
    local hll = KEYS[tonumber(ARGV[i + 4])]
    redis.call('PFADD', hll, ARGV[i + 3])
    redis.call('EXPIRE', hll, ttl)
    n = n + 1
  end
end
redis.call('EXPIRE', checkins, ttl)
redis.call('EXPIRE', counted, ttl)
return n
