-- Apply a batch of classified pings to one visitor session, atomically, in one round trip.
-- All keys share the shard's hash tag, so this runs unchanged on Redis Cluster.
-- KEYS: 1 session hash, 2 shard occupancy hash, 3 shard presence zset, 4 shard active-sessions zset,
--       5 shard transitions stream, 6.. the route's active-sessions zset (if any), per-night entries hashes and
--       per-night-per-POI HyperLogLogs (named in ARGV's payload; every key touched is declared here).
-- ARGV[1]: JSON {now, idle, grace, maxlen, ttl, route_key?, submitted, limit_session, limit_install,
--               install_limit_key, pings: [{ts, night, good, core: [poi], near: [poi]}]
--               (sorted by ts), dwell: {poi: seconds}, entries: {night: key}, hll: {"night|poi": key},
--               visitor: {night: the visitor's unlinkable token for that night's unique counts}}
-- Session hash fields: sid, install, route, hard_end, last_ts, "in:<poi>" = "entered|dwelled|threshold|seen",
--                      "v:<poi>" = first visit time (route progress).
local ses, occ, presence, active, stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local p = cjson.decode(ARGV[1])

local raw = redis.call('HGETALL', ses)
if #raw == 0 then return cjson.encode({error = 'session_not_found'}) end
local h = {}
for i = 1, #raw, 2 do h[raw[i]] = raw[i + 1] end
local hard_end = tonumber(h.hard_end)
if p.now >= hard_end then return cjson.encode({error = 'session_expired'}) end

-- Rate limits (no extra round trip): pings per minute for this session and for its install.
local window = math.floor(p.now / 60)
local used = (h.rw == tostring(window)) and tonumber(h.rc) or 0
local install_used = tonumber(redis.call('GET', p.install_limit_key) or '0')
if used + p.submitted > p.limit_session or install_used + p.submitted > p.limit_install then
  return cjson.encode({error = 'rate_limited', retry = 60 - (p.now % 60),
                       scope = (used + p.submitted > p.limit_session) and 'session' or 'install'})
end
redis.call('HSET', ses, 'rw', tostring(window), 'rc', tostring(used + p.submitted))
redis.call('INCRBY', p.install_limit_key, tostring(p.submitted))
redis.call('EXPIRE', p.install_limit_key, '120')

local sid, install = h.sid, h.install
local last_ts = tonumber(h.last_ts) or 0
local inside, changed, removed = {}, {}, {}
for field, value in pairs(h) do
  if string.sub(field, 1, 3) == 'in:' then
    local e, d, t, s = string.match(value, '^([^|]+)|([^|]+)|([^|]+)|([^|]+)$')
    inside[string.sub(field, 4)] = {tonumber(e), d == '1', tonumber(t), tonumber(s)}
  end
end

local function sorted_keys(t)
  local keys = {}
  for k, _ in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

local out, late = {}, 0
local function emit(kind, poi, ts, reason)
  out[#out + 1] = {kind, poi, ts, reason}
  redis.call('XADD', stream, 'MAXLEN', '~', tostring(p.maxlen), '*', 't', kind, 'p', poi, 'ts', tostring(ts), 'r', reason)
end

for _, ping in ipairs(p.pings) do
  if ping.ts < last_ts then
    late = late + 1  -- accepted, but an older ping cannot undo a later state
  else
    last_ts = ping.ts
    local near = {}
    for _, poi in ipairs(ping.near) do near[poi] = true end
    -- Leave or stay: decided against the widened fence (hysteresis); only precise pings can make a visitor leave.
    for _, poi in ipairs(sorted_keys(inside)) do
      local st = inside[poi]
      if near[poi] then
        st[4] = ping.ts
        if not st[2] and ping.ts - st[1] >= st[3] then
          st[2] = true
          emit('dwell', poi, ping.ts, 'dwell')
        end
        changed[poi] = true
      elseif ping.good then
        inside[poi] = nil
        changed[poi] = nil
        removed[#removed + 1] = poi
        -- The presence member is the truth of "inside": count down only if it was there.
        if redis.call('ZREM', presence, poi .. '|' .. sid) == 1 then
          redis.call('HINCRBY', occ, poi, '-1')
        end
        emit('exit', poi, ping.ts, 'left')
      end
    end
    -- Enter: the ping is inside the fence itself with an accuracy the fence can use (decided by the caller).
    for _, poi in ipairs(ping.core) do
      if not inside[poi] then
        inside[poi] = {ping.ts, false, tonumber(p.dwell[poi]) or 300, ping.ts}
        changed[poi] = true
        if redis.call('ZADD', presence, tostring(ping.ts), poi .. '|' .. sid) == 1 then
          redis.call('HINCRBY', occ, poi, '1')
        end
        redis.call('HINCRBY', p.entries[ping.night], poi, '1')
        redis.call('EXPIRE', p.entries[ping.night], tostring(p.ttl))
        local hll = p.hll[ping.night .. '|' .. poi]
        redis.call('PFADD', hll, p.visitor[ping.night])
        redis.call('EXPIRE', hll, tostring(p.ttl))
        if not h['v:' .. poi] then
          h['v:' .. poi] = tostring(ping.ts)
          redis.call('HSET', ses, 'v:' .. poi, tostring(ping.ts))
        end
        emit('enter', poi, ping.ts, 'entered')
      end
    end
  end
end

-- Deletions first: a POI left and entered again within this batch is inside at the end.
for _, poi in ipairs(removed) do redis.call('HDEL', ses, 'in:' .. poi) end
for _, poi in ipairs(sorted_keys(changed)) do
  local st = inside[poi]
  redis.call('HSET', ses, 'in:' .. poi, st[1] .. '|' .. (st[2] and '1' or '0') .. '|' .. st[3] .. '|' .. st[4])
  redis.call('ZADD', presence, tostring(st[4]), poi .. '|' .. sid)
end

-- Sliding expiry, never past the session's hard end.
local expires = math.min(p.now + p.idle, hard_end)
redis.call('HSET', ses, 'last_ts', tostring(last_ts))
redis.call('ZADD', active, tostring(expires), sid)
if p.route_key and p.route_key ~= cjson.null then redis.call('ZADD', p.route_key, tostring(expires), sid) end
redis.call('PEXPIREAT', ses, string.format('%d', math.floor((expires + p.grace) * 1000)))

local now_inside, visited = sorted_keys(inside), {}
for field, _ in pairs(h) do
  if string.sub(field, 1, 2) == 'v:' then visited[#visited + 1] = string.sub(field, 3) end
end
table.sort(visited)
return cjson.encode({t = out, inside = now_inside, visited = visited, route = h.route or '',
                     late = late, expires = expires})
