#!/usr/bin/env bash
# Catalog and inventory read paths under wrk, on a generated catalog (default 100k products).
#   bench/catalog.sh embedded [products] [duration]   # SQLite files + in-process cache and bus
#   bench/catalog.sh postgres [products] [duration]   # every context on PostgreSQL + Redis + RabbitMQ
# Each run measures /health/live as the ceiling, then: product by id (cached), product by id and
# a filtered list and searches (as typed, and misspelled: the typo-tolerant path) with the cache
# off (EMPORIUM_CATALOG_CACHE_TTL_SECS=0, so every request reaches the database), and batch
# availability of 10 SKUs. Setting BENCH_ONLY=typos runs just the searches (as typed and
# misspelled, cache off). With two cores or more the server runs on CPU 0 and wrk on CPU 1
# (BENCH_PIN=0 lets them share). EMPORIUM_BIN=<path> uses a release binary built beforehand.
# Copy the figures into docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-embedded}
products=${2:-100000}
duration=${3:-15s}
connections=32

case "$mode" in embedded|postgres) ;; *) echo "usage: $0 embedded|postgres [products] [duration]" >&2; exit 2;; esac
if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk (Debian)..." >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends wrk >/dev/null \
    || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
fi
# shellcheck source=bench/lib.sh
. bench/lib.sh
bin=$(emporium_binary)

work=$(mktemp -d)
server=""
cleanup() { [ -n "$server" ] && { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }; rm -rf "$work"; }
trap cleanup EXIT

# The edge rate limit is per client and wrk is one client: lift it to measure the app, not the limit.
export RUST_LOG=warn EMPORIUM_LOG_FORMAT=json EMPORIUM_SEED_DEMO=false EMPORIUM_DATA_DIR="$work/data" EMPORIUM_RATE_LIMIT_PER_MINUTE=0
if [ "$mode" = postgres ]; then
  pg=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}
  # Every context of the embedded process on its own database (a context without its
  # EMPORIUM_<CONTEXT>_DATABASE_URL would silently stay on a SQLite file).
  for ctx in identity catalog inventory cart ordering payments notifications; do
    psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS bench_$ctx WITH (FORCE)" -c "CREATE DATABASE bench_$ctx" \
      || { echo "cannot reach PostgreSQL at $pg (set BENCH_POSTGRES_URL)" >&2; exit 1; }
    export "EMPORIUM_${ctx^^}_DATABASE_URL=$pg/bench_$ctx"
  done
  export EMPORIUM_NAMESPACE="bench-$$" EMPORIUM_QUEUE_EXPIRY_SECS=600 \
    REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379} AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
fi

echo "seeding $products products ($mode)..." >&2
seed_started=$(date +%s.%N)
"$bin" seed --products "$products" --seed 7
echo "seeded in $(python3 -c "print(round($(date +%s.%N) - $seed_started, 1))") s" >&2

# The server on one core, wrk on another, when there are two: wrk's own work does not show up
# as the server's latency.
pin_server=() pin_wrk=()
if [ "${BENCH_PIN:-1}" != 0 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  pin_server=(taskset -c 0) pin_wrk=(taskset -c 1)
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
start_server() {
  EMPORIUM_LISTEN="127.0.0.1:$port" "$@" "${pin_server[@]}" "$bin" serve >"$work/server.log" 2>&1 &
  server=$!
  for _ in $(seq 1 200); do curl -fs "$base/health/live" >/dev/null && return; sleep 0.1; done
  echo "server did not start:" >&2; tail -20 "$work/server.log" >&2; exit 1
}
stop_server() { kill "$server"; wait "$server" 2>/dev/null || true; server=""; }

run() {
  local name=$1; shift
  local c=${CONNECTIONS:-$connections} t=2
  [ "$c" -lt 2 ] && t=1
  echo "== $name ($duration, $c connections, $t threads)"
  out=$("${pin_wrk[@]}" wrk -t"$t" -c"$c" -d"$duration" --latency "$@")
  echo "$out" | grep -E 'Requests/sec|Latency  |50%|99%|Non-2xx|Socket errors' || true
  if echo "$out" | grep -q 'Non-2xx'; then echo "error: non-2xx answers during $name" >&2; exit 1; fi
}

start_server env
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
product=$(curl -fs "$base/api/v1/catalog/products?limit=1&sort=rating" | json 'd["items"][0]["id"]')
# A department's first sub-category: the filter covers it and its leaf categories.
category=$(curl -fs "$base/api/v1/catalog/categories" | json 'd["roots"][0]["children"][0]["id"]')
skus=$(curl -fs "$base/api/v1/catalog/products?limit=10&sort=newest" | json '"&".join("sku="+p["sku"] for p in d["items"])')
list="$base/api/v1/catalog/products?category=$category&min_price=1000&max_price=20000&sort=price_asc&limit=24"
# A wrk script that searches the given terms in turn.
search_script() {
  local file=$1 terms
  shift
  terms=$(printf '"%s", ' "$@")
  cat >"$file" <<LUA
local terms = {${terms%, }}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", "/api/v1/catalog/search?limit=24&q=" .. terms[(i % #terms) + 1]:gsub(" ", "+"))
end
LUA
}
search_script "$work/search.lua" wool cotton "linen sweater" leather steel oak ceramic orbit novel lamp
# The same words misspelled: nothing matches as typed, so each search also looks up the closest
# catalog words and searches again (the typo-tolerant path).
search_script "$work/typos.lua" wooll coton "linnen sweatr" lether stele oakk ceramik orbitt novle lampe

machine() {
  local placement="wrk and server share the cores"
  [ ${#pin_server[@]} -gt 0 ] && placement="server pinned to CPU 0, wrk to CPU 1"
  echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -m); $placement; mode $mode, $products products"
}
if [ "${BENCH_ONLY:-}" = typos ]; then
  stop_server
  start_server env EMPORIUM_CATALOG_CACHE_TTL_SECS=0
  run "GET search, 10 rotating misspelled queries (cache off)" -s "$work/typos.lua" "$base"
  CONNECTIONS=1 run "GET search, 10 rotating queries as typed (cache off, 1 client)" -s "$work/search.lua" "$base"
  CONNECTIONS=1 run "GET search, 10 rotating misspelled queries (cache off, 1 client)" -s "$work/typos.lua" "$base"
  stop_server
  machine
  exit 0
fi

run "GET /health/live (ceiling)" "$base/health/live"
run "GET product by id (cached)" "$base/api/v1/catalog/products/$product"
run "GET inventory batch of 10 SKUs" "$base/api/v1/inventory?$skus"
run "GET search, 10 rotating queries (cached)" -s "$work/search.lua" "$base"
stop_server

start_server env EMPORIUM_CATALOG_CACHE_TTL_SECS=0
run "GET product by id (cache off)" "$base/api/v1/catalog/products/$product"
run "GET filtered list page (cache off)" "$list"
run "GET search, 10 rotating queries (cache off)" -s "$work/search.lua" "$base"
run "GET search, 10 rotating misspelled queries (cache off)" -s "$work/typos.lua" "$base"
# One client at a time: the latency a shopper sees when the server is not saturated.
CONNECTIONS=1 run "GET filtered list page (cache off, 1 client)" "$list"
CONNECTIONS=1 run "GET search, 10 rotating queries (cache off, 1 client)" -s "$work/search.lua" "$base"
CONNECTIONS=1 run "GET search, 10 rotating misspelled queries (cache off, 1 client)" -s "$work/typos.lua" "$base"
stop_server
machine
