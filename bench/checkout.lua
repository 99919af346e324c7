-- wrk driver of bench/checkout.sh: POST /api/v1/orders (place + pay in one call).
-- Env: CHECKOUT_DIR (users.txt "access_token pm_id" per line, skus.txt one SKU a line, run.txt the
-- key prefix). Each request takes the next user round-robin (each wrk thread starts at another
-- user), one or two SKUs from a rotating window over the list (quantity 1), and a unique
-- Idempotency-Key "<run>-<thread>-<n>". The order id of every 201 goes to CHECKOUT_DIR/ok-<thread>.txt
-- for the cross-check (wrk's response() does not say which request it answers, so the order id in
-- the body is the link); done() prints the status counts and writes sent/answered to sent.txt.

local dir = os.getenv("CHECKOUT_DIR")
local threads = {}
local counter = 0

local function lines(path)
  local out = {}
  for line in io.lines(path) do
    if line ~= "" then out[#out + 1] = line end
  end
  return out
end

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  threads[#threads + 1] = thread
end

local users, skus, run, ok_file
local n = 0
-- Globals: done() reads them from each thread with thread:get().
sent, answered, unconfirmed = 0, 0, 0
statuses, samples = {}, {}

function init(args)
  run = lines(dir .. "/run.txt")[1]
  skus = lines(dir .. "/skus.txt")
  users = {}
  for _, line in ipairs(lines(dir .. "/users.txt")) do
    local token, pm = line:match("^(%S+)%s+(%S+)$")
    users[#users + 1] = { auth = "Bearer " .. token, pm = pm }
  end
  ok_file = io.open(dir .. "/ok-" .. id .. ".txt", "w")
  -- Spread the threads over the users and SKUs.
  n = (id - 1) * 7919
end

local address = '"shipping_address":{"name":"Bench Buyer","line1":"Hauptstrasse 1","city":"Berlin",' ..
  '"postal_code":"10115","country":"DE"},"shipping_method":"standard"'

function request()
  n = n + 1
  sent = sent + 1
  local u = users[(n % #users) + 1]
  local a = skus[(n % #skus) + 1]
  local items
  if n % 2 == 0 then
    local b = skus[((n * 31 + 17) % #skus) + 1]
    if b == a then b = skus[((n + 1) % #skus) + 1] end
    items = string.format('[{"sku":"%s","quantity":1},{"sku":"%s","quantity":1}]', a, b)
  else
    items = string.format('[{"sku":"%s","quantity":1}]', a)
  end
  local key = string.format("%s-%d-%d", run, id, n)
  local body = string.format('{"items":%s,%s,"payment_method":"%s"}', items, address, u.pm)
  return wrk.format("POST", "/api/v1/orders", {
    ["Authorization"] = u.auth,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = key,
  }, body)
end

function response(status, headers, body)
  answered = answered + 1
  statuses[status] = (statuses[status] or 0) + 1
  if status == 201 then
    if not body:find('"status":"confirmed"', 1, true) then unconfirmed = unconfirmed + 1 end
    local oid = body:match('"id":"([^"]+)"')
    ok_file:write(oid or "?", "\n")
  elseif #samples < 3 then
    samples[#samples + 1] = status .. " " .. body:sub(1, 300)
  end
  if answered % 200 == 0 then ok_file:flush() end
end

function done(summary, latency, requests)
  local total = {}
  local s, a, u = 0, 0, 0
  for _, t in ipairs(threads) do
    for code, count in pairs(t:get("statuses")) do total[code] = (total[code] or 0) + count end
    s = s + t:get("sent")
    a = a + t:get("answered")
    u = u + t:get("unconfirmed")
    for _, sample in ipairs(t:get("samples")) do io.write("sample non-201: ", sample, "\n") end
  end
  local parts, non201 = {}, 0
  for code, count in pairs(total) do
    parts[#parts + 1] = code .. "=" .. count
    if code ~= 201 then non201 = non201 + count end
  end
  table.sort(parts)
  local secs = summary.duration / 1e6
  io.write(string.format("statuses: %s | non-201: %d | 201 not confirmed: %d\n", table.concat(parts, " "), non201, u))
  io.write(string.format("orders/s (201 only): %.1f over %.1f s\n", (total[201] or 0) / secs, secs))
  io.write(string.format("latency ms: p50 %.2f  p90 %.2f  p95 %.2f  p99 %.2f  max %.2f\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
  local f = io.open(dir .. "/sent.txt", "w")
  f:write(s, " ", a, "\n")
  f:close()
end
