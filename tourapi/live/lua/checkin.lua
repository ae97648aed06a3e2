-- Count a committed check-in once, and (when it is fresh) place the visitor inside the venue.
-- Called after the database commit (the record is the source of truth), by the request and, for records
-- it may have missed, by the repair job: the record id in the counted set makes a second call count nothing.
-- KEYS: 1 shard check-ins hash (night), 2 the POI's unique-visitor HyperLogLog (night), 3 session hash,
--       4 shard occupancy hash, 5 shard presence zset, 6 shard entries hash (night), 7 shard transitions stream,
--       8 shard counted-records set (night)
-- ARGV: 1 session id, 2 poi, 3 checkpoint id, 4 check-in time, 5 visitor token, 6 "1" if it is fresh (counts as
--       inside now), 7 dwell threshold, 8 stream maxlen, 9 counter ttl, 10 record id
-- Returns -1 if the record was counted before (whether or not it placed the visitor inside), 1 if it counted
-- the record and placed the visitor inside, else 0.
local checkins, hll, ses, occ, presence, entries, stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local sid, poi, checkpoint, ts, visitor, fresh = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
-- A record counted before (a retry, the repair job, or a rebuild that read it before its request got here) is
-- not counted again, but a fresh one still places the visitor inside: that part is idempotent by itself.
local first = redis.call('SADD', KEYS[8], ARGV[10]) == 1
if first then
  redis.call('EXPIRE', KEYS[8], ARGV[9])
  redis.call('HINCRBY', checkins, poi, '1')
  redis.call('HINCRBY', checkins, poi .. '|' .. checkpoint, '1')
  redis.call('EXPIRE', checkins, ARGV[9])
  redis.call('PFADD', hll, visitor)
  redis.call('EXPIRE', hll, ARGV[9])
  redis.call('XADD', stream, 'MAXLEN', '~', ARGV[8], '*', 't', 'checkin', 'p', poi, 'ts', ts, 'r', checkpoint)
end
local counted = first and 0 or -1
if fresh ~= '1' or redis.call('EXISTS', ses) == 0 then return counted end
if redis.call('HEXISTS', ses, 'in:' .. poi) == 1 then return counted end
redis.call('HSET', ses, 'in:' .. poi, ts .. '|0|' .. ARGV[7] .. '|' .. ts)
if redis.call('HEXISTS', ses, 'v:' .. poi) == 0 then redis.call('HSET', ses, 'v:' .. poi, ts) end
if redis.call('ZADD', presence, ts, poi .. '|' .. sid) == 1 then
  redis.call('HINCRBY', occ, poi, '1')
  redis.call('HINCRBY', entries, poi, '1')
  redis.call('EXPIRE', entries, ARGV[9])
  redis.call('XADD', stream, 'MAXLEN', '~', ARGV[8], '*', 't', 'enter', 'p', poi, 'ts', ts, 'r', 'checkin')
end
return first and 1 or -1
