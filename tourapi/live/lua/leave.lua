-- Take a session out of POIs without a ping: presence timeout, session end or erasure.
-- KEYS: 1 session hash, 2 shard occupancy hash, 3 shard presence zset, 4 shard transitions stream,
--       when ending the session: 5 shard active-sessions zset, 6 the install's session set, 7 the route's
--       active-sessions zset (if the session follows a route)
-- ARGV: 1 session id, 2 reason, 3 event time, 4 stream maxlen, 5.. POIs to leave ("*" = end the session)
-- A POI the session is not inside is skipped, so repeated or racing calls never double-count.
local ses, occ, presence, stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local sid, reason, ts, maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local pois = {}
if ARGV[5] == '*' then
  local fields = redis.call('HKEYS', ses)
  for _, f in ipairs(fields) do
    if string.sub(f, 1, 3) == 'in:' then pois[#pois + 1] = string.sub(f, 4) end
  end
else
  for i = 5, #ARGV do pois[#pois + 1] = ARGV[i] end
end
local left = {}
for _, poi in ipairs(pois) do
  redis.call('HDEL', ses, 'in:' .. poi)
  -- The presence member is the truth of "inside" (it outlives an expired session hash).
  if redis.call('ZREM', presence, poi .. '|' .. sid) == 1 then
    redis.call('HINCRBY', occ, poi, '-1')
    redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 't', 'exit', 'p', poi, 'ts', ts, 'r', reason)
    left[#left + 1] = poi
  end
end
if ARGV[5] == '*' then
  -- Ending the session: erase it from the shard's active set, the install's session set, the route's active set.
  redis.call('ZREM', KEYS[5], sid)
  redis.call('SREM', KEYS[6], sid)
  if KEYS[7] then redis.call('ZREM', KEYS[7], sid) end
  redis.call('DEL', ses)
end
return left
