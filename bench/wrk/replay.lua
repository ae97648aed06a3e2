-- Replays prepared requests in a round robin. File (env BENCH_REQUESTS), one request per line:
--   METHOD <TAB> PATH <TAB> Header: value|Header: value <TAB> BODY
-- "{TS}" in a body becomes the current UTC time and "{TS-n}" the time n seconds ago (ISO 8601),
-- so ping timestamps are always fresh.
local requests = {}
local counter = 0

local function iso(seconds_ago)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() - seconds_ago)
end

function init(args)
  for line in io.lines(os.getenv("BENCH_REQUESTS")) do
    local method, path, headers, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t?(.*)$")
    local h = {}
    for pair in headers:gmatch("[^|]+") do
      local name, value = pair:match("^([^:]+):%s*(.*)$")
      if name then h[name] = value end
    end
    requests[#requests + 1] = {method, path, h, body}
  end
  -- Threads start at different offsets so they do not replay in lock step.
  counter = math.random(0, #requests - 1)
end

function request()
  counter = counter + 1
  local r = requests[(counter % #requests) + 1]
  local body = r[4]
  if body ~= nil and body ~= "" then
    body = body:gsub("{TS%-(%d+)}", function(n) return iso(tonumber(n)) end):gsub("{TS}", iso(0))
  else
    body = nil
  end
  return wrk.format(r[1], r[2], r[3], body)
end

function done(summary, latency, requests_)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "socket_errors": %d, "bad_status": %d, '
    .. '"p50_us": %d, "p90_us": %d, "p99_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, errors, summary.errors.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean))
end
