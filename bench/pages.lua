-- Shoppers browsing while others buy (bench/checkout.sh with BENCH_READERS): list pages in four
-- orders and searches of ten terms, in turn, 20 products each. Every one of them shows stock
-- levels, so each checkout's reservation touches what these pages show.
local paths = {
  "/api/v1/catalog/products?limit=20&sort=price_asc",
  "/api/v1/catalog/products?limit=20&sort=price_desc",
  "/api/v1/catalog/products?limit=20&sort=rating",
  "/api/v1/catalog/products?limit=20&in_stock=true",
}
for _, term in ipairs({"wool", "cotton", "linen+sweater", "leather", "steel", "oak", "ceramic", "orbit", "novel", "lamp"}) do
  paths[#paths + 1] = "/api/v1/catalog/search?limit=20&q=" .. term
end
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1])
end
