-- Replays prepared requests in a round robin. File (env BENCH_REQUESTS), one request per line:
--   METHOD <TAB> PATH <TAB> Header: value|Header: value <TAB> BODY
-- "{TS}" in a body becomes the current UTC time and "{TS-n}" the time n seconds ago (ISO 8601),
-- so ping timestamps are always fresh.
-- Every response's status is counted (wrk itself only counts statuses >= 400 as errors), so the
-- harness can report 2xx/3xx/4xx/5xx separately and treat anything unexpected as an error.
local requests = {}
local counter = 0
statuses = {}
local threads = {}

local function iso(seconds_ago)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() - seconds_ago)
end

-- BENCH_DELAY_MS paces each connection (the soak's constant load): wait that long before every request.
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "")
if delay_ms then
  function delay() return delay_ms end
end

function setup(thread)
  threads[#threads + 1] = thread
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
  -- BENCH_SEQUENTIAL=1 replays the file once from the top (each request at most once, e.g. first
  -- check-ins); otherwise threads start at random offsets so they do not replay in lock step.
  if os.getenv("BENCH_SEQUENTIAL") == "1" then counter = 0 else counter = math.random(0, #requests - 1) end
end

function request()
  counter = counter + 1
  local r = requests[((counter - 1) % #requests) + 1]
  local body = r[4]
  if body ~= nil and body ~= "" then
    body = body:gsub("{TS%-(%d+)}", function(n) return iso(tonumber(n)) end):gsub("{TS}", iso(0))
  else
    body = nil
  end
  return wrk.format(r[1], r[2], r[3], body)
end

function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
end

function done(summary, latency, requests_)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  local counts = {}
  for _, thread in ipairs(threads) do
    local seen = thread:get("statuses")
    for status, n in pairs(seen or {}) do counts[status] = (counts[status] or 0) + n end
  end
  local parts = {}
  for status, n in pairs(counts) do parts[#parts + 1] = string.format('"%s": %d', status, n) end
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "socket_errors": %d, "timeouts": %d, "bad_status": %d, '
    .. '"p50_us": %d, "p90_us": %d, "p99_us": %d, "mean_us": %.1f, "statuses": {%s}}\n',
    summary.requests, summary.duration, errors, summary.errors.timeout, summary.errors.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean,
    table.concat(parts, ", ")))
end
