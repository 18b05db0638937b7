-- wrk script for bench/api_load.py: one wrk thread per connection (-t N -c N), so each
-- thread is one client making one request at a time, and response() always answers the
-- request() before it; that is what lets a client follow next_cursor for a page or two.
--
-- Environment (set by api_load.py): BENCH_TOKEN, BENCH_FINDINGS (highest finding id),
-- BENCH_RULES, BENCH_TARGETS (comma-separated), BENCH_SINCE (ISO time).

local token = os.getenv("BENCH_TOKEN")
local n_findings = tonumber(os.getenv("BENCH_FINDINGS"))
local rules, targets = {}, {}
for r in string.gmatch(os.getenv("BENCH_RULES"), "[^,]+") do rules[#rules + 1] = r end
for t in string.gmatch(os.getenv("BENCH_TARGETS"), "[^,]+") do targets[#targets + 1] = t end
local since = os.getenv("BENCH_SINCE")

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

local function enc(s)
  return (string.gsub(s, "[^%w%-%._~]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

local headers = {}
local json_headers = {}

function init(args)
  headers["Authorization"] = "Bearer " .. token
  json_headers["Authorization"] = "Bearer " .. token
  json_headers["Content-Type"] = "application/json"
  math.randomseed(tid * 7919 + os.time())
  n_list, n_page, n_get, n_patch, n_other = 0, 0, 0, 0, 0
  bad_list, bad_page, bad_get, bad_patch = 0, 0, 0, 0
end

local statuses = { "open", "ignored", "false_positive" }
local severities = { "critical", "high", "medium", "low" }
local sources = { "git", "image", "k8s", "file" }

-- the seeded status is a function of the id (see api_load.py SEED_STATUS): ids whose
-- id % 100 is below 95 are open / ignored / false_positive, which triage may change;
-- each client triages only ids of its own residue, so no two clients race on one row
local function triage_id()
  while true do
    local id = tid + 50 * math.random(0, math.floor(n_findings / 50) - 1)
    if id >= 1 and id <= n_findings and id % 100 < 95 then return id end
  end
end

local function list_query()
  local r = math.random(100)
  if r <= 30 then return "" end
  if r <= 42 then return "status=" .. statuses[math.random(#statuses)] end
  if r <= 54 then return "severity=" .. severities[math.random(#severities)] end
  if r <= 64 then return "rule=" .. enc(rules[math.random(#rules)]) end
  if r <= 72 then return "source=" .. sources[math.random(#sources)] end
  if r <= 84 then return "target=" .. enc(targets[math.random(#targets)]) end
  if r <= 92 then return "since=" .. enc(since) end
  return "status=open&severity=" .. severities[math.random(#severities)]
end

local last = nil       -- "list", "page", "get", "patch"
local last_query = nil -- the filters of the last list, to repeat with its cursor
local depth = 0        -- pages followed from the last first page
local cursor = nil

function request()
  if cursor ~= nil and depth < 2 and math.random(100) <= 60 then
    last, depth = "page", depth + 1
    local q = last_query
    local sep = (q == "") and "" or "&"
    local c = cursor
    cursor = nil
    return wrk.format("GET", "/v1/findings?" .. q .. sep .. "cursor=" .. c, headers)
  end
  cursor = nil
  local r = math.random(100)
  if r <= 62 then
    last, depth = "list", 0
    last_query = list_query()
    return wrk.format("GET", "/v1/findings?" .. last_query, headers)
  elseif r <= 93 then
    last = "get"
    return wrk.format("GET", "/v1/findings/" .. math.random(1, n_findings), headers)
  else
    last = "patch"
    local s = statuses[math.random(#statuses)]
    local body
    if s == "open" then
      body = '{"status":"open"}'
    else
      body = '{"status":"' .. s .. '","reason":"bench: load test triage"}'
    end
    return wrk.format("PATCH", "/v1/findings/" .. triage_id(), json_headers, body)
  end
end

function response(status, hdrs, body)
  local ok = status >= 200 and status < 300
  if last == "list" then
    n_list = n_list + 1
    if not ok then bad_list = bad_list + 1 end
  elseif last == "page" then
    n_page = n_page + 1
    if not ok then bad_page = bad_page + 1 end
  elseif last == "get" then
    n_get = n_get + 1
    if not ok then bad_get = bad_get + 1 end
  elseif last == "patch" then
    n_patch = n_patch + 1
    if not ok then bad_patch = bad_patch + 1 end
  else
    n_other = n_other + 1
  end
  if ok and (last == "list" or last == "page") then
    cursor = string.match(body, '"next_cursor"%s*:%s*"([^"]+)"')
  else
    cursor = nil
  end
end

function done(summary, latency, requests)
  local c = { list = 0, page = 0, get = 0, patch = 0, other = 0 }
  local b = { list = 0, page = 0, get = 0, patch = 0 }
  for _, t in ipairs(threads) do
    c.list = c.list + t:get("n_list")
    c.page = c.page + t:get("n_page")
    c.get = c.get + t:get("n_get")
    c.patch = c.patch + t:get("n_patch")
    c.other = c.other + t:get("n_other")
    b.list = b.list + t:get("bad_list")
    b.page = b.page + t:get("bad_page")
    b.get = b.get + t:get("bad_get")
    b.patch = b.patch + t:get("bad_patch")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"by_kind":{"list":%d,"page":%d,"get":%d,"patch":%d,"other":%d},' ..
    '"non2xx_by_kind":{"list":%d,"page":%d,"get":%d,"patch":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout,
    c.list, c.page, c.get, c.patch, c.other, b.list, b.page, b.get, b.patch))
end
