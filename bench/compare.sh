#!/usr/bin/env bash
# Emporium beside the hardware ceiling, in one run (issue 17). Builds the release binary and the
# bare axum handler of bench/ceiling/, pins the servers and wrk to separate cores when there are
# two or more, then:
#   reads     product by id (cached), a list page of 20, a search of 20 (10 rotating terms), each
#             against the ceiling, embedded mode (SQLite, in-process cache), the production
#             catalog process (`serve --service catalog` on PostgreSQL + Redis + RabbitMQ) and the
#             gateway process in front of it (`serve --service gateway`, rate limiter off, its
#             micro-cache as configured by default unless BENCH_GATEWAY_CACHE=0; on the servers'
#             cores too), rounds alternating the order so machine noise hits every side;
#   half rate every read again at about half of its maximum (bench/paced.lua), for p50/p99;
#   soak      3 M mixed requests (bench/soak.lua) against the embedded process in 15 s chunks of
#             wrk, its RSS after each chunk: growth between the 2nd and the 3rd million;
#   checkout  bench/checkout.sh embedded with direct calls between contexts and with
#             EMPORIUM_PEER_CALLS=http (the router path), alternating A-B-B-A;
#   start-up  launch to ready on an empty data directory, 5 runs each without and with demo data;
# and prints one table with absolute figures and ratios to the ceiling, RSS, binary size and the
# machine (cores, load average before and after), appended to docs/benchmarks.md with the date
# and commit. Loopback only; about 30 minutes with the defaults once built on a 2-core host, 20 of
# them the soak (mixed traffic runs at 2,000-3,000 requests a second; BENCH_SOAK_REQUESTS=0 skips it).
#   bench/compare.sh [duration per read] [rounds]        # defaults: 5s 2
# Environment: EMPORIUM_BIN=<path> uses a release binary built beforehand (else
# `cargo build --release`, honouring CARGO_TARGET_DIR; BENCH_BINARY_COMMIT records what it was
# built from, and the table names it as the commit); BENCH_PRODUCTS (10000) products seeded;
# BENCH_CONNECTIONS (32) for the reads and the soak; BENCH_PACED=0 skips the half-rate runs,
# BENCH_PACED_DELAY_MS (5) their pause; BENCH_SOAK_REQUESTS (3000000; 0 skips the soak),
# BENCH_SOAK_CHUNK (15s); BENCH_CHECKOUT_DURATION (10s), BENCH_CHECKOUT_CONNECTIONS
# (8), BENCH_CHECKOUT_ROUNDS (as rounds), BENCH_CHECKOUT_PRODUCTS (1000); BENCH_PRODUCTION=0 skips
# the production catalog and the gateway; BENCH_GATEWAY_CACHE=0 turns the gateway's micro-cache
# off (every read then makes the hop); BENCH_CHECKOUT=0 skips checkout; BENCH_DOC= (empty)
# prints without appending; BENCH_POSTGRES_URL, REDIS_URL, AMQP_URL as in the other scripts.
# Not run here yet: checkout on PostgreSQL (bench/checkout.sh postgres) and the full
# multi-process topology (bench/gateway.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-5s}
rounds=${2:-2}
connections=${BENCH_CONNECTIONS:-32}
products=${BENCH_PRODUCTS:-10000}
checkout_duration=${BENCH_CHECKOUT_DURATION:-10s}
checkout_connections=${BENCH_CHECKOUT_CONNECTIONS:-8}
checkout_rounds=${BENCH_CHECKOUT_ROUNDS:-$rounds}
checkout_products=${BENCH_CHECKOUT_PRODUCTS:-1000}
production=${BENCH_PRODUCTION:-1}
gateway_cache=${BENCH_GATEWAY_CACHE:-1}
checkout=${BENCH_CHECKOUT:-1}
paced=${BENCH_PACED:-1}
paced_delay_ms=${BENCH_PACED_DELAY_MS:-5}
soak_requests=${BENCH_SOAK_REQUESTS:-3000000}
soak_chunk=${BENCH_SOAK_CHUNK:-15s}
doc=${BENCH_DOC-docs/benchmarks.md}
pg=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}
redis_url=${REDIS_URL:-redis://127.0.0.1:6379}
amqp_url=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
started=$(date +%s)

say() { echo "[compare +$(($(date +%s) - started))s] $*" >&2; }
fail() { echo "error: $*" >&2; exit 1; }

case "$rounds" in '' | *[!0-9]* | 0) fail "rounds must be a positive number, got '$rounds'" ;; esac
case "$gateway_cache" in
  1) gateway_cache_env=() gateway_cache_text="the gateway's micro-cache on (the default)" ;;
  0) gateway_cache_env=(EMPORIUM_GATEWAY_CACHE_MB=0) gateway_cache_text="the gateway's micro-cache off (every read makes the hop)" ;;
  *) fail "BENCH_GATEWAY_CACHE must be 0 or 1, got '$gateway_cache'" ;;
esac
case "$soak_requests" in '' | *[!0-9]*) fail "BENCH_SOAK_REQUESTS must be a number (0 skips the soak), got '$soak_requests'" ;; esac
case "$paced_delay_ms" in '' | *[!0-9]* | 0) fail "BENCH_PACED_DELAY_MS must be a positive number of milliseconds, got '$paced_delay_ms'" ;; esac
for tool in wrk curl python3 taskset; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is missing (Debian: apt-get install wrk curl python3 util-linux)"
done
if [ "$production" = 1 ] && ! command -v psql >/dev/null 2>&1; then
  fail "psql is missing (for the production catalog's database); BENCH_PRODUCTION=0 skips it"
fi

# shellcheck source=bench/lib.sh
. bench/lib.sh
bin=$(emporium_binary)
if [ -n "${EMPORIUM_BIN:-}" ]; then
  built="binary given by EMPORIUM_BIN${BENCH_BINARY_COMMIT:+, built from commit $BENCH_BINARY_COMMIT}"
else
  built="built from this checkout"
  if [ -n "$(git status --porcelain -- crates Cargo.toml Cargo.lock 2>/dev/null)" ]; then
    built="$built, with uncommitted changes under crates/"
  fi
fi
say "building bench/ceiling..."
CARGO_TARGET_DIR="$PWD/bench/ceiling/target" cargo build --release --quiet --locked \
  --manifest-path bench/ceiling/Cargo.toml
ceiling_bin=$PWD/bench/ceiling/target/release/bench-ceiling

# Servers on the first half of the cores, wrk on the rest.
cores=$(nproc)
if [ "$cores" -ge 2 ]; then
  half=$((cores / 2))
  server_cpus="0-$((half - 1))" load_cpus="$half-$((cores - 1))" wrk_threads=$((cores - half))
  [ "$half" = 1 ] && server_cpus=0
  [ "$cores" = 2 ] && load_cpus=1
  layout="servers pinned to CPU(s) $server_cpus, wrk ($wrk_threads thread(s)) to CPU(s) $load_cpus"
else
  server_cpus="" load_cpus="" wrk_threads=1
  layout="one core: servers and wrk share it"
fi
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
say "$cores cores; $layout; load average $load_before"
if pgrep -x rustc >/dev/null 2>&1; then say "warning: rustc is running: the figures will be noisy"; fi

work=$(mktemp -d)
db="bench_compare_$$"
declare -A pid=() base=()
cleanup() {
  local name
  for name in "${!pid[@]}"; do kill "${pid[$name]}" 2>/dev/null || true; wait "${pid[$name]}" 2>/dev/null || true; done
  if [ "$production" = 1 ]; then psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# The same settings for every Emporium process: quiet logs, the edge's per-client limit lifted
# (wrk is one client), no demo catalog.
# A scrape token, so the half-rate runs can read the cache counters.
metrics_token=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
emporium_env=(RUST_LOG=warn EMPORIUM_LOG_FORMAT=json EMPORIUM_SEED_DEMO=false EMPORIUM_RATE_LIMIT_PER_MINUTE=0
  EMPORIUM_METRICS_TOKEN="$metrics_token")
# The production catalog verifies tokens with identity's keys, fetched when a token first comes;
# anonymous reads never send one, so identity's address only has to be well-formed.
production_env=(REDIS_URL="$redis_url" AMQP_URL="$amqp_url" EMPORIUM_NAMESPACE="bench-compare-$$"
  EMPORIUM_QUEUE_EXPIRY_SECS=600 EMPORIUM_IDENTITY_URL=http://127.0.0.1:9)

# launch <name> <command...>: starts a server on a free port, pinned, and waits until it answers.
launch() {
  local name=$1 port
  shift
  port=$(free_port)
  base[$name]="http://127.0.0.1:$port"
  ${server_cpus:+taskset -c "$server_cpus"} env EMPORIUM_LISTEN="127.0.0.1:$port" "$@" >"$work/$name.log" 2>&1 &
  pid[$name]=$!
  for _ in $(seq 1 600); do
    curl -fs -o /dev/null "${base[$name]}/health/live" && return 0
    kill -0 "${pid[$name]}" 2>/dev/null || break
    sleep 0.1
  done
  tail -n 20 "$work/$name.log" >&2
  fail "$name did not start"
}
stop() { kill "${pid[$1]}" 2>/dev/null || true; wait "${pid[$1]}" 2>/dev/null || true; unset "pid[$1]"; }
rss_mb() { awk '/VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/${pid[$1]}/status"; }

also=""
[ "$production" = 1 ] && also=" and, at the same time, the production catalog (PostgreSQL)"
say "seeding $products products: embedded (SQLite)$also..."
env "${emporium_env[@]}" EMPORIUM_DATA_DIR="$work/embedded" "$bin" seed --products "$products" --seed 7 \
  >"$work/seed-embedded.log" 2>&1 &
seed_embedded=$!
seed_production=""
if [ "$production" = 1 ]; then
  psql -q "$pg/postgres" -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" \
    || fail "cannot reach PostgreSQL at $pg (set BENCH_POSTGRES_URL, or BENCH_PRODUCTION=0)"
  # Catalog on PostgreSQL, the other contexts of the seeding process on throw-away SQLite files.
  env "${emporium_env[@]}" EMPORIUM_DATA_DIR="$work/production-seed" EMPORIUM_CATALOG_DATABASE_URL="$pg/$db" \
    "$bin" seed --products "$products" --seed 7 >"$work/seed-production.log" 2>&1 &
  seed_production=$!
fi
wait "$seed_embedded" || { tail -n 20 "$work/seed-embedded.log" >&2; fail "seeding embedded failed"; }
if [ -n "$seed_production" ]; then
  wait "$seed_production" || { tail -n 20 "$work/seed-production.log" >&2; fail "seeding the production catalog failed"; }
fi

say "starting the servers: the ceiling, embedded mode${also:+, the production catalog}..."
launch ceiling "$ceiling_bin"
launch embedded "${emporium_env[@]}" EMPORIUM_DATA_DIR="$work/embedded" "$bin" serve
targets=(ceiling embedded)
if [ "$production" = 1 ]; then
  launch production "${emporium_env[@]}" "${production_env[@]}" DATABASE_URL="$pg/$db" \
    EMPORIUM_DATA_DIR="$work/production" "$bin" serve --service catalog
  targets+=(production)
  # The gateway proxies to this catalog; the other upstreams are never asked by these reads.
  upstreams=()
  for ctx in IDENTITY INVENTORY CART ORDERING PAYMENTS NOTIFICATIONS; do upstreams+=("EMPORIUM_UPSTREAM_$ctx=http://127.0.0.1:9"); done
  launch gateway "${emporium_env[@]}" "${production_env[@]}" "${upstreams[@]}" "${gateway_cache_env[@]}" EMPORIUM_UPSTREAM_CATALOG="${base[production]}" \
    EMPORIUM_WEB_SESSION_KEY="$(python3 -c 'import secrets; print(secrets.token_hex(64))')" "$bin" serve --service gateway
  targets+=(gateway)
fi
sleep 1
declare -A rss_idle=()
for t in "${targets[@]}"; do rss_idle[$t]=$(rss_mb "$t"); done

# Each server's own product (ids differ between the two seeded databases); the ceiling answers
# any path, so it gets embedded's.
declare -A by_id=()
for t in "${targets[@]}"; do
  source_base=${base[$t]}
  [ "$t" = ceiling ] && source_base=${base[embedded]}
  [ "$t" = gateway ] && source_base=${base[production]}
  by_id[$t]=$(curl -fs "$source_base/api/v1/catalog/products?limit=1&sort=rating" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])')
done
list_path="/api/v1/catalog/products?limit=20&sort=price_asc"
cat >"$work/search.lua" <<'LUA'
local terms = {"wool", "cotton", "linen sweater", "leather", "steel", "oak", "ceramic", "orbit", "novel", "lamp"}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", "/api/v1/catalog/search?limit=20&q=" .. terms[(i % #terms) + 1]:gsub(" ", "+"))
end
LUA
reads=("product by id (cached)" "list page of 20 (cached)" "search of 20, 10 terms (cached)")

# wrk_read <target> <read> [wrk options...]: the URL and options of one read against one target.
wrk_read() {
  local target=$1 read=$2
  shift 2
  case "$read" in
    product*) wrk_args=("${base[$target]}/api/v1/catalog/products/${by_id[$target]}") ;;
    list*) wrk_args=("${base[$target]}$list_path") ;;
    search*) wrk_args=(-s "$work/search.lua" "${base[$target]}") ;;
  esac
  ${load_cpus:+taskset -c "$load_cpus"} wrk -t"$wrk_threads" "$@" "${wrk_args[@]}"
}

say "warming every read on every server (1 s each)..."
for t in "${targets[@]}"; do
  for r in "${reads[@]}"; do wrk_read "$t" "$r" -c4 -d1s >/dev/null; done
done

results="$work/reads.txt"
for round in $(seq 1 "$rounds"); do
  order=("${targets[@]}")
  if [ $((round % 2)) -eq 0 ]; then # reverse on even rounds: drift in the machine's load hits both ends
    order=()
    for ((i = ${#targets[@]} - 1; i >= 0; i--)); do order+=("${targets[$i]}"); done
  fi
  for r in "${reads[@]}"; do
    for t in "${order[@]}"; do
      say "round $round/$rounds: $r — $t ($duration, $connections connections)"
      out=$(wrk_read "$t" "$r" -c"$connections" -d"$duration" --latency)
      if grep -q 'Non-2xx' <<<"$out"; then echo "$out" >&2; fail "non-2xx answers: $r — $t"; fi
      rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
      p50=$(awk '$1 == "50%" { print $2 }' <<<"$out")
      p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
      transfer=$(awk '/Transfer\/sec/ { print $2 }' <<<"$out")
      say "  $rps req/s, p50 $p50, p99 $p99"
      printf '%s|%s|%s|%s|%s|%s|%s\n' "$t" "$r" "$round" "$rps" "$p50" "$p99" "$transfer" >>"$results"
    done
  done
done
declare -A rss_after=()
for t in "${targets[@]}"; do rss_after[$t]=$(rss_mb "$t"); done

# cache_misses <target>: the catalog cache misses its process has counted (the gateway's are its
# upstream's: the production catalog).
cache_misses() {
  local source=$1 text
  [ "$source" = gateway ] && source=production
  text=$(curl -fs -H "Authorization: Bearer $metrics_token" "${base[$source]}/metrics") || fail "cannot read ${base[$source]}/metrics"
  awk '/^cache_requests_total/ && /outcome="miss"/ { s += $NF } END { printf "%d", s }' <<<"$text"
}

# Latency at half of the maximum rate: each read again, paced by bench/paced.lua so the offered
# rate is about half the mean of the rounds above.
paced_results="$work/paced.txt"
touch "$paced_results"
if [ "$paced" = 1 ]; then
  for t in "${targets[@]}"; do
    [ "$t" = ceiling ] && continue
    for r in "${reads[@]}"; do
      max=$(awk -F'|' -v t="$t" -v r="$r" '$1 == t && $2 == r { s += $4; n++ } END { if (n) printf "%.0f", s / n }' "$results")
      # connections × 1000 / (pause + ~0.5 ms of answer) ≈ half the maximum
      pace_connections=$(awk -v m="$max" -v d="$paced_delay_ms" 'BEGIN { c = int(m / 2 * (d + 0.5) / 1000 + 0.5); if (c < 2) c = 2; print c }')
      say "half rate: $r — $t (aim $((max / 2)) req/s: $pace_connections connections, ${paced_delay_ms} ms pause, $duration)"
      case "$r" in
        product*) paced_args=("${base[$t]}/api/v1/catalog/products/${by_id[$t]}" -- "$paced_delay_ms") ;;
        list*) paced_args=("${base[$t]}$list_path" -- "$paced_delay_ms") ;;
        search*) paced_args=("${base[$t]}" -- "$paced_delay_ms" search) ;;
      esac
      misses_before=$(cache_misses "$t")
      out=$(${load_cpus:+taskset -c "$load_cpus"} wrk -t"$wrk_threads" -c"$pace_connections" -d"$duration" --latency \
        -s bench/paced.lua "${paced_args[@]}")
      if grep -q 'Non-2xx' <<<"$out"; then echo "$out" >&2; fail "non-2xx answers at half rate: $r — $t"; fi
      rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
      p50=$(awk '$1 == "50%" { print $2 }' <<<"$out")
      p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
      slowest=$(awk '$1 == "Latency" { print $4 }' <<<"$out")
      misses_after=$(cache_misses "$t")
      # Misses during the run show cache expiry; they may come with a tail without causing it.
      say "  $rps req/s, p50 $p50, p99 $p99, max $slowest; $((misses_after - misses_before)) cache misses"
      printf '%s|%s|%s|%s|%s|%s\n' "$t" "$r" "$max" "$rps" "$p50" "$p99" >>"$paced_results"
    done
  done
fi

# Memory soak: mixed traffic (bench/soak.lua) against the embedded process, in chunks of
# $soak_chunk, with its RSS taken after each chunk, until $soak_requests requests are done.
soak_line=""
if [ "$soak_requests" -gt 0 ]; then
  say "memory soak: sampling products and categories for the mixed traffic..."
  python3 - "${base[embedded]}" "$products" >"$work/soak-sample.txt" <<'PY'
import json, sys, urllib.parse, urllib.request
base, wanted = sys.argv[1], int(sys.argv[2])
def get(path):
    with urllib.request.urlopen(base + path, timeout=30) as r:
        return json.load(r)
cursor, seen = None, 0
while seen < wanted:
    page = get("/api/v1/catalog/products?limit=100" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else ""))
    for p in page["items"]:
        print("p", p["id"], p["slug"], urllib.parse.quote(p["sku"], safe=""))
        seen += 1
    cursor = page.get("next")
    if not cursor:
        break
def walk(nodes):
    for n in nodes:
        print("c", n["id"])
        walk(n.get("children", []))
walk(get("/api/v1/catalog/categories").get("roots", []))
PY
  soak_done=0 soak_started=$(date +%s) soak_marks="" next_mark=1000000 soak_answers=(0 0 0 0)
  soak_start_rss=$(rss_mb embedded)
  while [ "$soak_done" -lt "$soak_requests" ]; do
    out=$(${load_cpus:+taskset -c "$load_cpus"} wrk -t"$wrk_threads" -c"$connections" -d"$soak_chunk" \
      -s bench/soak.lua "${base[embedded]}" -- "$work/soak-sample.txt")
    n=$(awk '/requests in/ { print $1 }' <<<"$out")
    [ -n "$n" ] || { echo "$out" >&2; fail "the soak's wrk run printed no request count"; }
    read -r a2 a3 a4 a5 < <(awk '/^answers:/ { print $3, $5, $7, $9 }' <<<"$out")
    soak_answers=($((soak_answers[0] + a2)) $((soak_answers[1] + a3)) $((soak_answers[2] + a4)) $((soak_answers[3] + a5)))
    soak_done=$((soak_done + n))
    rss=$(rss_mb embedded)
    soak_elapsed=$(($(date +%s) - soak_started))
    soak_rate=$((soak_done / (soak_elapsed > 0 ? soak_elapsed : 1)))
    soak_left=$(((soak_requests - soak_done) / (soak_rate > 0 ? soak_rate : 1)))
    say "  soak: $soak_done/$soak_requests requests, RSS $rss MB; $soak_rate req/s, about $(((soak_left > 0 ? soak_left : 0) / 60)) min left"
    while [ "$soak_done" -ge "$next_mark" ]; do
      soak_marks="$soak_marks${soak_marks:+, }$rss MB at $((next_mark / 1000000))M"
      next_mark=$((next_mark + 1000000))
    done
    [ "${soak_answers[3]}" = 0 ] || { echo "$out" >&2; fail "5xx answers in the memory soak"; }
  done
  soak_seconds=$(($(date +%s) - soak_started))
  soak_end_rss=$(rss_mb embedded)
  sleep 10
  soak_line="$soak_done mixed requests (bench/soak.lua, $connections connections) in $soak_seconds s ($((soak_done / (soak_seconds > 0 ? soak_seconds : 1))) req/s); answers 2xx ${soak_answers[0]}, 3xx ${soak_answers[1]}, 4xx ${soak_answers[2]}, 5xx ${soak_answers[3]}. Embedded RSS: $soak_start_rss MB before, ${soak_marks:-no million reached}, $soak_end_rss MB at the end, $(rss_mb embedded) MB 10 s later"
  say "  $soak_line"
fi
for t in "${targets[@]}"; do stop "$t"; done

checkout_results="$work/checkout.txt"
touch "$checkout_results"
if [ "$checkout" = 1 ]; then
  # A-B-B-A: each mode runs first once per pair of rounds.
  plan=()
  for round in $(seq 1 "$checkout_rounds"); do
    if [ $((round % 2)) -eq 1 ]; then plan+=("$round:direct" "$round:http"); else plan+=("$round:http" "$round:direct"); fi
  done
  for step in "${plan[@]}"; do
    round=${step%%:*} calls=${step#*:}
    say "checkout round $round/$checkout_rounds, peer calls $calls: bench/checkout.sh embedded $checkout_duration $checkout_connections (seed, sign-ups, run, cross-check)..."
    log="$work/checkout-$round-$calls.log"
    if EMPORIUM_BIN="$bin" BENCH_PRODUCTS="$checkout_products" BENCH_SERVER_CPUS="$server_cpus" BENCH_LOAD_CPUS="$load_cpus" BENCH_WRK_THREADS="$wrk_threads" \
      EMPORIUM_PEER_CALLS="$calls" bench/checkout.sh embedded "$checkout_duration" "$checkout_connections" >"$log" 2>&1; then
      verdict=$(grep -q '^cross-check OK' "$log" && echo OK || echo "not run")
    else
      verdict=FAILED
      tail -n 15 "$log" >&2
    fi
    orders=$(awk '/^orders\/s/ { print $4 }' "$log")
    p50=$(awk '/^latency ms:/ { print $4 }' "$log")
    p95=$(awk '/^latency ms:/ { print $8 }' "$log")
    p99=$(awk '/^latency ms:/ { print $10 }' "$log")
    cpu=$(grep -o '([0-9.]* ms per order' "$log" | head -n1 | tr -d '(' | awk '{ print $1 }')
    non201=$(grep -o 'non-201: [0-9]*' "$log" | awk '{ print $2 }')
    say "  ${orders:-?} orders/s, p95 ${p95:-?} ms, ${cpu:-?} ms CPU per order, cross-check $verdict"
    printf '%s|%s|%s|%s|%s|%s|%s|%s|%s\n' "$calls" "$round" "${orders:-}" "${p50:-}" "${p95:-}" "${p99:-}" \
      "${cpu:-}" "${non201:-}" "$verdict" >>"$checkout_results"
  done
fi
# Cold start: launch to the first 200 from /health/ready on an empty data directory (SQLite files
# created, migrations run, the first signing key made), pinned like the reads; demo data off and on.
cold_start_ms() { # cold_start_ms <demo true|false>: prints milliseconds, or "failed"
  local dir port
  dir=$(mktemp -d "$work/cold.XXXX")
  port=$(free_port)
  python3 - "$dir" "$port" "$1" "$bin" ${server_cpus:+"$server_cpus"} <<'PY' || echo failed
import os, subprocess, sys, time, urllib.request
data_dir, port, demo, binary = sys.argv[1:5]
pin = ["taskset", "-c", sys.argv[5]] if len(sys.argv) > 5 else []
env = dict(os.environ, RUST_LOG="warn", EMPORIUM_LOG_FORMAT="json", EMPORIUM_DATA_DIR=data_dir,
           EMPORIUM_LISTEN=f"127.0.0.1:{port}", EMPORIUM_SEED_DEMO=demo)
start = time.perf_counter()
proc = subprocess.Popen(pin + [binary, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    while time.perf_counter() - start < 30 and proc.poll() is None:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=1).status == 200:
                print(f"{(time.perf_counter() - start) * 1000:.0f}")
                sys.exit(0)
        except OSError:
            time.sleep(0.002)
    sys.exit(1)
finally:
    proc.terminate()
    proc.wait()
PY
  rm -rf "$dir"
}
cold_line=""
for demo in false true; do
  runs=()
  for _ in 1 2 3 4 5; do runs+=("$(cold_start_ms "$demo")"); done
  sorted=$(printf '%s\n' "${runs[@]}" | sort -n | tr '\n' ' ')
  say "cold start, demo data $demo: ${sorted% } ms"
  cold_line="$cold_line${cold_line:+; }demo data $( [ "$demo" = true ] && echo on || echo off) ${sorted% } ms"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

size_mb() { awk -v b="$(stat -c %s "$1")" 'BEGIN { printf "%.1f", b / 1048576 }'; }
binary="$(size_mb "$bin") MB as built"
if command -v strip >/dev/null 2>&1; then
  strip -o "$work/emporium-stripped" "$bin" && binary="$binary, $(size_mb "$work/emporium-stripped") MB stripped"
fi
commit=${BENCH_BINARY_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
cpu_model=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
rss_line=""
for t in "${targets[@]}"; do rss_line="$rss_line${rss_line:+; }$t ${rss_idle[$t]} MB idle, ${rss_after[$t]} MB after the reads"; done

report="$work/report.md"
python3 - "$results" "$checkout_results" "bench/checkout.sh embedded $checkout_duration $checkout_connections" >"$report" <<'PY'
import sys
from collections import defaultdict

def rate(s):
    v = float(s)
    return f"{v / 1000:.1f}k" if v >= 1000 else f"{v:.0f}"

def span(values, fmt):
    lo, hi = min(values), max(values)
    return fmt(lo) if fmt(lo) == fmt(hi) else f"{fmt(lo)}–{fmt(hi)}"

def per_answer(transfer, rps):
    units = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3}
    for unit in ("GB", "MB", "KB", "B"):
        if transfer.endswith(unit):
            return float(transfer[: -len(unit)]) * units[unit] / float(rps)
    return 0.0

rows = [line.rstrip("\n").split("|") for line in open(sys.argv[1])]
rps = defaultdict(dict)  # (target, read) -> round -> req/s
detail = []
for target, read, rnd, r, p50, p99, transfer in rows:
    rps[(target, read)][rnd] = float(r)
    detail.append((read, rnd, target, float(r), p50, p99, per_answer(transfer, r)))
targets = [t for t in ("ceiling", "embedded", "production", "gateway") if any(k[0] == t for k in rps)]
names = {"ceiling": "ceiling (bare axum)", "embedded": "embedded", "production": "production catalog (PG + Redis)",
         "gateway": "gateway → production catalog"}
reads = list(dict.fromkeys(r for _, r, *_ in rows))

print("Reads, requests/s (range over the rounds; in brackets the share of the ceiling in the same round;")
print("for the gateway also the share of the production catalog read directly):")
print()
print("| read | " + " | ".join(names[t] for t in targets) + " |")
print("|---|" + "---:|" * len(targets))
for read in reads:
    cells = []
    for t in targets:
        by_round = rps[(t, read)]
        cell = span(list(by_round.values()), rate)
        if t != "ceiling":
            ratios = [v / rps[("ceiling", read)][k] * 100 for k, v in by_round.items() if k in rps[("ceiling", read)]]
            cell += f" ({span(ratios, lambda x: f'{x:.0f}%')})"
        if t == "gateway":
            direct = rps[("production", read)]
            kept = [v / direct[k] * 100 for k, v in by_round.items() if k in direct]
            cell += f", {span(kept, lambda x: f'{x:.0f}%')} of direct"
        cells.append(cell)
    print(f"| {read} | " + " | ".join(cells) + " |")
print()
print("<details><summary>Every read run</summary>")
print()
print("| read | round | server | req/s | p50 | p99 | bytes per answer (with headers) |")
print("|---|---:|---|---:|---:|---:|---:|")
for read, rnd, target, r, p50, p99, size in detail:
    print(f"| {read} | {rnd} | {target} | {r:,.0f} | {p50} | {p99} | {size:,.0f} |")
print()
print("</details>")

checkout = [line.rstrip("\n").split("|") for line in open(sys.argv[2]) if line.strip()]
if checkout:
    print()
    print(f"Checkout, embedded (`{sys.argv[3]}`, server and wrk pinned as for the reads):")
    print()
    print("| peer calls | round | orders/s | p50 | p95 | p99 | CPU per order | non-201 | cross-check |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    means = defaultdict(list)
    for calls, rnd, orders, p50, p95, p99, cpu, non201, verdict in checkout:
        label = "direct (default)" if calls == "direct" else "http (EMPORIUM_PEER_CALLS=http)"
        ms = lambda v: f"{float(v):.1f} ms" if v else "?"
        print(f"| {label} | {rnd} | {orders or '?'} | {ms(p50)} | {ms(p95)} | {ms(p99)} | {ms(cpu)} | {non201 or '?'} | {verdict} |")
        if orders:
            means[calls].append((float(orders), float(cpu) if cpu else None))
    if means.get("direct") and means.get("http"):
        d = sum(o for o, _ in means["direct"]) / len(means["direct"])
        h = sum(o for o, _ in means["http"]) / len(means["http"])
        line = f"Mean orders/s: direct {d:.1f}, http {h:.1f} (direct/http = {d / h:.2f}×)"
        dc = [c for _, c in means["direct"] if c is not None]
        hc = [c for _, c in means["http"] if c is not None]
        if dc and hc:
            line += f"; mean CPU per order: direct {sum(dc) / len(dc):.1f} ms, http {sum(hc) / len(hc):.1f} ms"
        print()
        print(line + ".")
PY

{
  echo
  echo "### $(date -u '+%Y-%m-%d %H:%M') UTC, commit $commit, \`bench/compare.sh $duration $rounds\`"
  echo
  echo "Machine: $cores cores ($cpu_model), $(free -g | awk '/Mem:/ { print $2 }') GiB; $layout; load average before $load_before, after $load_after."
  echo "Binary: $built; $binary. $products products; $connections connections, $duration per read, $rounds round(s) alternating the servers' order; RUST_LOG=warn, JSON logs, embedded console on (the default); $gateway_cache_text."
  echo
  cat "$report"
  echo
  echo "RSS: $rss_line."
  echo
  echo "Cold start (launch to the first 200 from /health/ready, empty data directory, 5 runs sorted): $cold_line."
  if [ -s "$paced_results" ]; then
    echo
    echo "Latency at half of the maximum rate (\`bench/paced.lua\`: each connection pauses $paced_delay_ms ms after every answer; a closed loop, so a stall delays rather than queues; the maximum is the mean of the rounds above):"
    echo
    echo "| read | server | half of the maximum, req/s | offered and served, req/s | p50 | p99 |"
    echo "|---|---|---:|---:|---:|---:|"
    while IFS='|' read -r t r max rps p50 p99; do
      echo "| $r | $t | $((max / 2)) | ${rps%.*} | $p50 | $p99 |"
    done <"$paced_results"
  fi
  if [ -n "$soak_line" ]; then
    echo
    echo "Memory soak: $soak_line."
  fi
  if [ "$production" != 1 ]; then echo; echo "Production catalog skipped (BENCH_PRODUCTION=0)."; fi
  echo
  echo "Not in this run: checkout on PostgreSQL + RabbitMQ + Redis (bench/checkout.sh postgres), the full multi-process topology with the gateway on its own core (bench/gateway.sh)$([ -n "$soak_line" ] && echo . || echo ", the memory soak (BENCH_SOAK_REQUESTS=0).")"
} >"$work/section.md"

echo
cat "$work/section.md"
if [ -n "$doc" ]; then
  cat "$work/section.md" >>"$doc"
  say "appended to $doc"
fi
say "done in $(($(date +%s) - started)) s"
