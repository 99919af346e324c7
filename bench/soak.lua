-- Mixed traffic for wrk: the memory soak of bench/compare.sh.
--   wrk -s bench/soak.lua <base-url> -- <sample-file>
-- The sample file has one line per product ("p <id> <slug> <sku>") and per category
-- ("c <id>"). Each request is drawn at random: mostly what a shop serves again and again
-- (product reads and pages, the home page, popular lists and searches), plus list pages with
-- distinct filters and searches with distinct terms (new cache keys every time, so the caches'
-- bounds are what keeps memory flat), stock reads, guest carts, a few failed sign-ins (argon2
-- is dear, so they are rare) and 404s. At the end it prints the answers by class; a 5xx answer
-- is a failed soak.

local products, categories = {}, {}
local words = { "wool", "cotton", "linen", "leather", "steel", "oak", "ceramic", "lamp", "novel", "jacket",
  "mug", "chair", "shirt", "walnut", "glass", "copper", "bamboo", "silk", "denim", "marble" }
local sorts = { "price_asc", "price_desc", "newest", "rating" }
local limits = { 12, 24, 48 }
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("thread_number", counter)
  table.insert(threads, thread)
end

function init(args)
  if not args[1] then
    error("usage: wrk -s bench/soak.lua <base-url> -- <sample-file>")
  end
  for line in io.lines(args[1]) do
    local kind, a, b, c = line:match("^(%a) (%S+) ?(%S*) ?(%S*)$")
    if kind == "p" then
      table.insert(products, { id = a, slug = b, sku = c })
    elseif kind == "c" then
      table.insert(categories, a)
    end
  end
  if #products == 0 then
    error("no products in " .. args[1])
  end
  math.randomseed(os.time() * 100 + (thread_number or 0))
  answers = { 0, 0, 0, 0, 0 }
end

local function pick(list)
  return list[math.random(#list)]
end

local json = { ["content-type"] = "application/json" }

-- Shares of the mix (cumulative thresholds below): API product reads 30%, product pages 15%,
-- home 7%, storefront search 5%, popular list pages 8% and searches 8% (a few keys, mostly
-- cache hits), list pages with distinct filters 5% and searches with distinct terms 5% (new
-- cache keys), stock reads 8%, guest carts 3%, failed sign-ins 0.05%, 404s the rest (~6%).
local popular_lists = { "/api/v1/catalog/products?limit=20&sort=price_asc", "/api/v1/catalog/products?limit=20&sort=newest",
  "/api/v1/catalog/products?limit=20&sort=rating", "/api/v1/catalog/products?limit=48&sort=price_desc" }

request = function()
  local p = pick(products)
  local r = math.random()
  if r < 0.30 then
    return wrk.format("GET", "/api/v1/catalog/products/" .. p.id)
  elseif r < 0.45 then
    return wrk.format("GET", "/p/" .. p.slug)
  elseif r < 0.52 then
    return wrk.format("GET", "/")
  elseif r < 0.57 then
    return wrk.format("GET", "/search?q=" .. pick(words))
  elseif r < 0.65 then
    return wrk.format("GET", pick(popular_lists))
  elseif r < 0.73 then
    return wrk.format("GET", "/api/v1/catalog/search?limit=20&q=" .. pick(words))
  elseif r < 0.78 then
    local low = math.random(0, 49) * 100
    local path = string.format("/api/v1/catalog/products?min_price=%d&max_price=%d&sort=%s&limit=%d",
      low, low + math.random(1, 200) * 100, pick(sorts), pick(limits))
    if #categories > 0 then
      path = path .. "&category=" .. pick(categories)
    end
    return wrk.format("GET", path)
  elseif r < 0.83 then
    local q = pick(words) .. "+" .. pick(words)
    if math.random() < 0.5 then
      q = q .. "+" .. math.random(0, 999)
    end
    return wrk.format("GET", "/api/v1/catalog/search?limit=20&q=" .. q)
  elseif r < 0.91 then
    return wrk.format("GET", "/api/v1/inventory?sku=" .. p.sku)
  elseif r < 0.94 then
    return wrk.format("POST", "/api/v1/cart/items", json, '{"sku":"' .. p.sku .. '","quantity":1}')
  elseif r < 0.9405 then
    return wrk.format("POST", "/api/v1/auth/login", json,
      '{"email":"soak' .. math.random(0, 9999) .. '@example.com","password":"not the password 1"}')
  else
    return wrk.format("GET", string.format("/api/v1/catalog/products/%08x-0000-4000-8000-%012x",
      math.random(0, 0x7fffffff), math.random(0, 0x7fffffff)))
  end
end

response = function(status)
  local class = math.floor(status / 100)
  if class >= 1 and class <= 5 then
    answers[class] = answers[class] + 1
  end
end

done = function()
  local total = { 0, 0, 0, 0, 0 }
  for _, thread in ipairs(threads) do
    local counts = thread:get("answers")
    for i = 1, 5 do
      total[i] = total[i] + counts[i]
    end
  end
  io.write(string.format("answers: 2xx %d 3xx %d 4xx %d 5xx %d\n", total[2], total[3], total[4], total[5]))
end
