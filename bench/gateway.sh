#!/usr/bin/env bash
# Gateway overhead: the same catalog reads straight from the catalog process and through the
# gateway, in the multi-process topology (`emporium dev --topology multi`: seven context
# processes on PostgreSQL, RabbitMQ and Redis, the gateway in front), release build.
#   bench/gateway.sh [duration] [connections]
# Three passes per read: direct to catalog; through the gateway with the shared (Redis) rate
# limiter on, with a budget too large to refuse anything, so every request pays its Redis round
# trip; and through the gateway with the limiter off. Each row also gives the CPU time the
# gateway and the catalog process spent per request (from /proc), and one-client rows give the
# latency the gateway adds when nothing queues.
# Then the same reads with the gateway on a core of its own, as in production where it runs in
# pods of its own: every process starts on core 0 (one runtime worker each, as a 1-CPU pod
# has), then the gateway and Redis move to core 1; wrk stays on core 0 with the catalog.
# BENCH_PINNED=0 skips that part; it needs 2 or more cores. Redis's CPU affinity is restored
# on exit. Copy the figures into docs/benchmarks.md.
# Run it on a quiet machine: wrk, the gateway and the contexts share the cores. CARGO_TARGET_DIR
# is honoured (a separate one keeps the release build from holding the shared target's lock);
# EMPORIUM_BIN=<path> uses a release binary built beforehand instead of building.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-15s}
connections=${2:-32}

if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk (Debian)..." >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends wrk >/dev/null \
    || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
fi
if pgrep -x rustc >/dev/null 2>&1; then
  echo "warning: rustc is running: the figures will be noisy" >&2
fi
# shellcheck source=bench/lib.sh
. bench/lib.sh
bin=$(emporium_binary)

pg=${DEV_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}
prefix="bench_gw_$$"
export DEV_POSTGRES_URL="$pg" DEV_DATABASE_PREFIX="$prefix" EMPORIUM_NAMESPACE="bench-gw-$$" \
  EMPORIUM_QUEUE_EXPIRY_SECS=600 RUST_LOG=warn EMPORIUM_LOG_FORMAT=json
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
gateway="http://127.0.0.1:$port"
work=$(mktemp -d)
log="$work/dev.log"
dev=""

redis_pid=$(pgrep -x redis-server | head -n1 || true)
redis_affinity=""
if [ -n "$redis_pid" ]; then redis_affinity=$(taskset -pc "$redis_pid" 2>/dev/null | awk '{print $NF}'); fi

stop() {
  if [ -n "$dev" ]; then kill -TERM "$dev" 2>/dev/null || true; wait "$dev" 2>/dev/null || true; dev=""; fi
  if [ -n "$redis_affinity" ]; then taskset -a -pc "$redis_affinity" "$redis_pid" >/dev/null 2>&1 || true; fi
}
cleanup() {
  stop
  for ctx in identity catalog inventory cart ordering payments notifications; do
    psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS ${prefix}_$ctx WITH (FORCE)" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# Starts the topology with the given environment (the gateway reads the rate-limit settings).
# With PIN set (a taskset CPU list), every process starts there.
start() {
  ${PIN:+taskset -c "$PIN"} env "$@" "$bin" dev --topology multi --seed-demo --listen "127.0.0.1:$port" >>"$log" 2>&1 &
  dev=$!
  for _ in $(seq 1 600); do
    curl -fs -o /dev/null "$gateway/health/ready" && return 0
    kill -0 "$dev" 2>/dev/null || break
    sleep 0.2
  done
  echo "the topology did not become ready:" >&2; tail -n 30 "$log" | cut -c1-300 >&2; exit 1
}

results="$work/results"
# CPU time (user + system, in clock ticks) a process has used so far.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() {
  local name=$1 url=$2 c=${CONNECTIONS:-$connections} t=${WRK_THREADS:-2}
  [ "$c" -lt 2 ] && t=1
  echo "== $name ($duration, $c connections)" >&2
  local gw0 cat0
  gw0=$(ticks "$gateway_pid"); cat0=$(ticks "$catalog_pid")
  out=$(${WRK_PIN:+taskset -c "$WRK_PIN"} wrk -t"$t" -c"$c" -d"$duration" --latency "$url")
  local gw_ticks=$(( $(ticks "$gateway_pid") - gw0 )) cat_ticks=$(( $(ticks "$catalog_pid") - cat0 ))
  if [ -z "${REFUSED:-}" ] && echo "$out" | grep -q 'Non-2xx'; then echo "$out" >&2; echo "error: non-2xx answers during $name" >&2; exit 1; fi
  if [ -n "${REFUSED:-}" ]; then
    # Every answer must be the 429 (the few allowed by the burst aside).
    local refused total_requests
    refused=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
    total_requests=$(echo "$out" | awk '/requests in/ {print $1}')
    [ "${refused:-0}" -ge $((total_requests - 20)) ] || { echo "$out" >&2; echo "error: expected 429s during $name" >&2; exit 1; }
  fi
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  total=$(echo "$out" | awk '/requests in/ {print $1}')
  p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
  # Microseconds of CPU per request (a clock tick is 1/CLK_TCK s).
  hz=$(getconf CLK_TCK)
  gw_us=$(( gw_ticks * 1000000 / hz / total )); cat_us=$(( cat_ticks * 1000000 / hz / total ))
  echo "   $rps req/s, p50 $p50, p99 $p99; CPU per request: gateway $gw_us µs, catalog $cat_us µs" >&2
  printf '%s|%s|%s|%s|%s|%s|%s|%s\n' "${CORES:-shared}" "$name" "$c" "$rps" "$p50" "$p99" "$gw_us" "$cat_us" >>"$results"
}
pids() {
  catalog=$(grep -o 'dev: started catalog (pid [0-9]*) on http://[0-9.:]*' "$log" | tail -n1 | awk '{print $NF}')
  catalog_pid=$(grep -o 'dev: started catalog (pid [0-9]*)' "$log" | tail -n1 | grep -o '[0-9]*')
  gateway_pid=$(grep -o 'dev: started gateway (pid [0-9]*)' "$log" | tail -n1 | grep -o '[0-9]*')
}

limiter_on=(EMPORIUM_RATE_LIMIT_PER_MINUTE=60000000 EMPORIUM_RATE_LIMIT_BURST=1000000)
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
# The reads, once the topology is up: a cached product by id and a cached list page.
reads() {
  product=$(curl -fs "$gateway/api/v1/catalog/products?limit=1&sort=rating" | json 'd["items"][0]["id"]')
  by_id="/api/v1/catalog/products/$product"
  list="/api/v1/catalog/products?sort=price_asc&limit=24"
  # Warm the cache so every pass reads the same way.
  curl -fs -o /dev/null "$catalog$by_id"; curl -fs -o /dev/null "$catalog$list"
}

start "${limiter_on[@]}"
pids; reads
run "product by id — direct to catalog" "$catalog$by_id"
run "product by id — gateway, Redis limiter on" "$gateway$by_id"
run "product list page — direct to catalog" "$catalog$list"
run "product list page — gateway, Redis limiter on" "$gateway$list"
# One client at a time: the latency the gateway adds when nothing waits for a core.
CONNECTIONS=1 run "product by id — direct to catalog" "$catalog$by_id"
CONNECTIONS=1 run "product by id — gateway, Redis limiter on" "$gateway$by_id"
stop

start EMPORIUM_RATE_LIMIT_PER_MINUTE=0
pids; reads
run "product by id — gateway, limiter off" "$gateway$by_id"
run "product list page — gateway, limiter off" "$gateway$list"
stop

if [ "${BENCH_PINNED:-1}" != 0 ] && [ "$(nproc)" -ge 2 ]; then
  # The gateway (and the Redis it asks) on core 1; the contexts and wrk on core 0.
  pin_gateway() {
    taskset -a -pc 1 "$gateway_pid" >/dev/null
    if [ -n "$redis_pid" ]; then taskset -a -pc 1 "$redis_pid" >/dev/null; fi
  }
  export CORES="gateway on its own core" WRK_PIN=0 WRK_THREADS=1
  PIN=0 start "${limiter_on[@]}"
  pids; reads; pin_gateway
  run "product by id — direct to catalog" "$catalog$by_id"
  run "product by id — gateway, Redis limiter on" "$gateway$by_id"
  run "product list page — direct to catalog" "$catalog$list"
  run "product list page — gateway, Redis limiter on" "$gateway$list"
  stop
  PIN=0 start EMPORIUM_RATE_LIMIT_PER_MINUTE=0
  pids; reads; pin_gateway
  run "product by id — gateway, limiter off" "$gateway$by_id"
  run "product list page — gateway, limiter off" "$gateway$list"
  stop
fi

# Last (its spent bucket stays in Redis for a few seconds): one client flooding past its budget
# (60/min, burst 10), every answer a 429 from the edge, on shared cores.
unset CORES WRK_PIN WRK_THREADS
start EMPORIUM_RATE_LIMIT_PER_MINUTE=60 EMPORIUM_RATE_LIMIT_BURST=10
pids; reads
REFUSED=1 run "product by id — gateway, one client over its limit (429s)" "$gateway$by_id"
stop

echo
echo "| Cores | Read | Path | Clients | Requests/s | p50 | p99 | vs direct | gateway CPU/req | catalog CPU/req |"
echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"
python3 - "$results" <<'PY'
import sys
rows = [line.rstrip("\n").split("|") for line in open(sys.argv[1])]
direct = {}
for cores, name, clients, rps, *_ in rows:
    read, path = name.split(" — ")
    if path.startswith("direct"):
        direct[(cores, read, clients)] = float(rps)
for cores, name, clients, rps, p50, p99, gw_us, cat_us in rows:
    read, path = name.split(" — ")
    base = direct.get((cores, read, clients))
    share = f"{float(rps) / base * 100:.0f}%" if base and "429" not in path else "—"
    gw = f"{gw_us} µs" if not path.startswith("direct") else "—"
    print(f"| {cores} | {read} | {path} | {clients} | {float(rps):,.0f} | {p50} | {p99} | {share} | {gw} | {cat_us} µs |")
PY
echo
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -m); 'shared': wrk, the gateway and the 7 contexts share every core; $connections connections, $duration per row"
