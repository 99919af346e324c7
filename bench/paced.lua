-- A paced wrk run: each connection waits <delay-ms> after every answer before its next request,
-- so the offered rate is about connections × 1000 / (delay + latency) instead of "as fast as the
-- server goes". bench/compare.sh uses it for latency at half of the maximum rate.
--   wrk -s bench/paced.lua <url> -- <delay-ms> [search]
-- With "search" the requests rotate over the ten search terms of compare.sh's search read.
-- This is still a closed loop: a stall holds back that connection's next request instead of
-- queueing it, so the tail is somewhat kinder than an open-loop generator would measure.

local pause = 1
local terms = { "wool", "cotton", "linen+sweater", "leather", "steel", "oak", "ceramic", "orbit", "novel", "lamp" }
local rotate = false
local i = 0

function init(args)
  pause = tonumber(args[1]) or error("usage: wrk -s bench/paced.lua <url> -- <delay-ms> [search]")
  rotate = args[2] == "search"
end

function delay()
  return pause
end

request = function()
  if rotate then
    i = i + 1
    return wrk.format("GET", "/api/v1/catalog/search?limit=20&q=" .. terms[(i % #terms) + 1])
  end
  return wrk.format()
end
