#!/usr/bin/env bash
# Instructions per cached read (issue 17), counted by valgrind's callgrind: the same total for the
# same binary and inputs whatever else the machine is doing, so two builds can be compared on a
# noisy host where wrk's requests/s move by ±15% from run to run.
#
# Seeds BENCH_PRODUCTS (10000) products into embedded mode (SQLite), starts `emporium serve` under
# callgrind with instrumentation off (start-up and seeding are not counted), then for each read —
# product by id, a list page of 20, a search of 20 — sends 200 requests to warm the cache, turns
# instrumentation on, sends N requests on one keep-alive connection, and turns it off again.
# Prints the user-space instructions per request (the server's, the kernel's socket work is not
# counted; its background loops, the outbox relay's polls, run during the window and add a few).
#   bench/instructions.sh [requests per read]          # default 2000; about a minute in all
# Environment: EMPORIUM_BIN=<path> uses a release binary built beforehand (else `cargo build
# --release`, honouring CARGO_TARGET_DIR); BENCH_PRODUCTS (10000); BENCH_PROFILES=<dir> keeps each
# read's callgrind dump there (callgrind.<read>.out) for `callgrind_annotate --inclusive=yes`, which
# names functions when the binary keeps its symbols (CARGO_PROFILE_RELEASE_STRIP=none);
# EMPORIUM_CONSOLE_TRACES_PER_SECOND (1 here, see below); BENCH_GATEWAY=1 adds the gateway's
# instructions for the product read proxied through it (needs Redis at REDIS_URL). The search
# figure of one binary moves by up to 10% from run to run; product and list repeat within 0.5%.
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-2000}
products=${BENCH_PRODUCTS:-10000}

fail() { echo "error: $*" >&2; exit 1; }
case "$requests" in '' | *[!0-9]* | 0) fail "requests per read must be a positive number, got '$requests'" ;; esac
for tool in valgrind callgrind_control curl python3; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is missing (Debian: apt-get install valgrind curl python3)"
done

# shellcheck source=bench/lib.sh
. bench/lib.sh
bin=$(emporium_binary)

work=$(mktemp -d)
server=""
gateway=""
cleanup() {
  for pid in $gateway $server; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# The console records up to EMPORIUM_CONSOLE_TRACES_PER_SECOND traces a second (default 100). Under
# callgrind the server answers a few hundred requests a second, so the default would record a tenth
# or more of the counted requests, and how many depended on how fast the machine was that minute;
# under wrk's tens of thousands a second it records fewer than 0.3%. One a second keeps the console's
# layers and sampler in the path, as in every run, with as small a recorded share as wrk sees.
settings=(RUST_LOG=warn EMPORIUM_SEED_DEMO=false EMPORIUM_RATE_LIMIT_PER_MINUTE=0 EMPORIUM_DATA_DIR="$work/data"
  EMPORIUM_CONSOLE_TRACES_PER_SECOND="${EMPORIUM_CONSOLE_TRACES_PER_SECOND:-1}")
echo "seeding $products products..." >&2
env "${settings[@]}" "$bin" seed --products "$products" --seed 7 >"$work/seed.log" 2>&1 \
  || { tail -n 20 "$work/seed.log" >&2; fail "seeding failed (see above)"; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
echo "starting the server under callgrind (start-up takes a few seconds)..." >&2
env "${settings[@]}" EMPORIUM_LISTEN="127.0.0.1:$port" \
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/callgrind.out" \
  "$bin" serve >"$work/server.log" 2>&1 &
server=$!
# await <pid> <url> <log> <what>: until <url> answers 2xx; fails when the process stops first.
await() {
  for _ in $(seq 1 600); do
    curl -fs -o /dev/null "$2" && return 0
    kill -0 "$1" 2>/dev/null || { tail -n 20 "$3" >&2; fail "$4 stopped while starting (see above)"; }
    sleep 0.2
  done
  fail "$4 was not ready after 120 s (log: $3)"
}
await "$server" "$base/health/ready" "$work/server.log" "the server"

id=$(curl -fs "$base/api/v1/catalog/products?limit=1&sort=rating" | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])')

# send <port> <count> <path>: requests on one keep-alive connection; every answer must be a 200.
send() {
  python3 - "$1" "$2" "$3" <<'PY'
import http.client, sys
port, count, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
conn = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(count):
    conn.request("GET", path)
    answer = conn.getresponse()
    answer.read()
    if answer.status != 200:
        sys.exit(f"GET {path} answered {answer.status}")
PY
}

# count <pid> <port> <key> <name> <path> <dump>: warms the cache with 200 requests, counts
# <requests> more in process <pid> (listening on <port>), dumps the counts to <dump> (callgrind
# numbers its dumps per process) and prints the row.
count() {
  send "$2" 200 "$5"
  callgrind_control --instr=on "$1" >/dev/null 2>&1
  send "$2" "$requests" "$5"
  callgrind_control --instr=off "$1" >/dev/null 2>&1
  # Dumps what was counted since the last dump and zeroes the counters.
  callgrind_control --dump="$3" "$1" >/dev/null 2>&1
  [ -s "$6" ] || fail "callgrind wrote no dump for '$4' ($6)"
  local total
  total=$(awk '/^totals:/ {print $2}' "$6")
  if [ -n "${BENCH_PROFILES:-}" ]; then mkdir -p "$BENCH_PROFILES" && cp "$6" "$BENCH_PROFILES/callgrind.$3.out"; fi
  printf '| %s | %d | %d |\n' "$4" "$requests" "$((total / requests))"
}

printf '| read | requests | instructions per request |\n|---|---:|---:|\n'
dumps=0
for read in "product|product by id (cached)|/api/v1/catalog/products/$id" \
  "list|list page of 20 (cached)|/api/v1/catalog/products?limit=20&sort=price_asc" \
  "search|search of 20 (cached)|/api/v1/catalog/search?limit=20&q=wool"; do
  key=${read%%|*} rest=${read#*|}
  dumps=$((dumps + 1))
  count "$server" "$port" "$key" "${rest%%|*}" "${rest#*|}" "$work/callgrind.out.$dumps"
done

# BENCH_GATEWAY=1: the gateway's own instructions for the cached product read proxied to the
# server above (every upstream pointed at it; rate limiting and the micro-cache off, so every
# read makes the hop; the gateway still needs REDIS_URL to start).
if [ "${BENCH_GATEWAY:-0}" = 1 ]; then
  gw_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  upstreams=()
  for context in identity catalog inventory cart ordering payments notifications; do
    upstreams+=("EMPORIUM_UPSTREAM_${context^^}=$base")
  done
  echo "starting the gateway under callgrind..." >&2
  env "${settings[@]}" "${upstreams[@]}" EMPORIUM_GATEWAY_CACHE_MB=0 REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}" \
    EMPORIUM_WEB_SESSION_KEY="$(python3 -c 'import secrets; print(secrets.token_hex(64))')" \
    EMPORIUM_LISTEN="127.0.0.1:$gw_port" \
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/gateway.out" \
    "$bin" serve --service gateway >"$work/gateway.log" 2>&1 &
  gateway=$!
  await "$gateway" "http://127.0.0.1:$gw_port/health/live" "$work/gateway.log" "the gateway (it needs Redis at REDIS_URL)"
  count "$gateway" "$gw_port" gateway "gateway: product by id proxied (the gateway's own)" \
    "/api/v1/catalog/products/$id" "$work/gateway.out.1"
fi
echo "binary: $bin ($(stat -c %s "$bin") bytes)" >&2
