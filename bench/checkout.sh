#!/usr/bin/env bash
# Checkout throughput under wrk: POST /api/v1/orders with explicit items, shipping and a saved card,
# so every request is one whole saga (claim the key, price from catalog, check the card, reserve
# stock, write the order, capture the payment, commit the reservation, confirm).
#   bench/checkout.sh embedded [duration] [connections]   # SQLite files + in-process bus
#   bench/checkout.sh postgres [duration] [connections]   # the same process, every context on its
#                                                         # own PostgreSQL database + Redis + RabbitMQ
# Defaults: 20s, 32 connections. BENCH_USERS (50) users round-robin, BENCH_SKUS (500) SKUs in a
# rotating window (one or two lines of quantity 1 per order), each request a new Idempotency-Key.
# Prints orders/s, latency percentiles, non-201 answers, the server's CPU and thread switches per
# order, a per-step breakdown from /metrics
# (saga steps, calls between contexts, HTTP routes; means over the run), then cross-checks the
# databases: every 201 is one confirmed order with exactly one captured payment of its total.
# Copy the figures into docs/benchmarks.md.
# EMPORIUM_BIN=<path> uses a release binary built beforehand; BENCH_SERVER_CPUS and BENCH_LOAD_CPUS
# (taskset CPU lists) pin the server and wrk apart, BENCH_WRK_THREADS sets wrk's threads
# (bench/compare.sh sets all three). EMPORIUM_PEER_CALLS=http reaches the server like any setting.
# BENCH_POSTGRES_PARAMS (default sslmode=disable) is appended to each database URL: on loopback
# there is nothing for TLS to protect, and the compose file's PostgreSQL (the official image) has no
# certificate. A server with one (Debian's has) is otherwise reached over TLS, which here costs
# about a fifth of the throughput; set it to sslmode=require to measure that.
# BENCH_READERS=<connections> (default 0) runs a second wrk alongside, as many connections reading
# list pages and searches (bench/pages.lua), and prints its rate: what orders cost browsing.
# Broker drill (postgres mode): BENCH_BROKER_RESTART_AT=<seconds into the run> stops RabbitMQ's app
# (`rabbitmqctl stop_app`: every connection dropped) for BENCH_BROKER_DOWN (5) seconds and starts
# it again, even when the run fails. The cross-check then also proves that no event was lost or
# duplicated: exactly one order-confirmed mail per confirmed order, once the outboxes drain.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-embedded}
duration=${2:-20s}
connections=${3:-32}
users=${BENCH_USERS:-50}
skus=${BENCH_SKUS:-500}
products=${BENCH_PRODUCTS:-1000}
readers=${BENCH_READERS:-0}
case "$readers" in '' | *[!0-9]*) echo "BENCH_READERS must be a number of connections (0: none), got '$readers'" >&2; exit 2;; esac

case "$mode" in embedded|postgres) ;; *) echo "usage: $0 embedded|postgres [duration] [connections]" >&2; exit 2;; esac
if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk (Debian)..." >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends wrk >/dev/null \
    || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
fi
# shellcheck source=bench/lib.sh
. bench/lib.sh
bin=$(emporium_binary)
server_cpus=${BENCH_SERVER_CPUS:-}
load_cpus=${BENCH_LOAD_CPUS:-}

restart_at=${BENCH_BROKER_RESTART_AT:-}
broker_down=${BENCH_BROKER_DOWN:-5}
if [ -n "$restart_at" ]; then
  [ "$mode" = postgres ] || { echo "BENCH_BROKER_RESTART_AT needs postgres mode (embedded has no broker)" >&2; exit 2; }
  command -v rabbitmqctl >/dev/null 2>&1 || { echo "rabbitmqctl is missing: the drill restarts RabbitMQ with it" >&2; exit 1; }
fi

work=$(mktemp -d)
server=""
drill=""
cleanup() {
  [ -n "$server" ] && { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }
  if [ -n "$drill" ]; then # the broker is started again whatever happened: others use it after us
    kill "$drill" 2>/dev/null || true
    wait "$drill" 2>/dev/null || true
    rabbitmqctl -q start_app >/dev/null 2>&1 || echo "warning: rabbitmqctl start_app failed: start RabbitMQ by hand" >&2
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# Setup signs up $users accounts from one address: lift the per-address limits; tokens outlive the run.
export RUST_LOG=warn EMPORIUM_LOG_FORMAT=json EMPORIUM_SEED_DEMO=false EMPORIUM_DATA_DIR="$work/data" \
  EMPORIUM_AUTH_RATE_PER_MINUTE=100000 EMPORIUM_ACCESS_TOKEN_TTL_SECS=3600 EMPORIUM_RATE_LIMIT_PER_MINUTE=0 \
  EMPORIUM_METRICS_TOKEN="${EMPORIUM_METRICS_TOKEN:-bench-metrics-$$}" # checkout.py metrics sends it
unset EMPORIUM_SMTP_URL # the verification tokens are read from the dev mailbox
if [ "$mode" = postgres ]; then
  pg=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}
  pg_params=${BENCH_POSTGRES_PARAMS-sslmode=disable}
  for ctx in identity catalog inventory cart ordering payments notifications; do
    psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS bench_checkout_$ctx WITH (FORCE)" \
      -c "CREATE DATABASE bench_checkout_$ctx" \
      || { echo "cannot reach PostgreSQL at $pg (set BENCH_POSTGRES_URL)" >&2; exit 1; }
    export "EMPORIUM_${ctx^^}_DATABASE_URL=$pg/bench_checkout_$ctx${pg_params:+?$pg_params}"
  done
  export EMPORIUM_NAMESPACE="bench-checkout-$$" EMPORIUM_QUEUE_EXPIRY_SECS=600 \
    REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379} AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
fi

echo "seeding $products products with 1,000,000 units each ($mode)..." >&2
"$bin" seed --products "$products" --stock 1000000 --seed 11 >/dev/null

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
EMPORIUM_LISTEN="127.0.0.1:$port" ${server_cpus:+taskset -c "$server_cpus"} "$bin" serve >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 300); do curl -fs "$base/health/live" >/dev/null && break; sleep 0.1; done
curl -fs "$base/health/live" >/dev/null || { echo "server did not start:" >&2; tail -20 "$work/server.log" >&2; exit 1; }

echo "signing up $users users (argon2id: a few seconds) and picking $skus in-stock SKUs..." >&2
BENCH_RUN=$$ python3 bench/checkout.py setup "$base" "$work" "$users" "$skus"
echo "bench$$" >"$work/run.txt"

# Statements per order too when the server loads pg_stat_statements (shared_preload_libraries):
# its view is then created in the postgres database, where it sees every database's statements.
statements="NULL" statements_from=""
if [ "$mode" = postgres ] && psql -X -At "$pg/postgres" -c "SHOW shared_preload_libraries" | grep -q pg_stat_statements \
  && psql -X -q "$pg/postgres" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null 2>&1; then
  statements="s.calls"
  statements_from="LEFT JOIN (SELECT dbid, SUM(calls) AS calls FROM pg_stat_statements GROUP BY dbid) s ON s.dbid = d.datid"
fi
pg_xacts() { # committed transactions (read-only statements included) and statements per context database
  [ "$mode" = postgres ] || return 0
  psql -X -At -F' ' "$pg/postgres" -c "SELECT pg_stat_clear_snapshot(); SELECT d.datname, d.xact_commit, COALESCE($statements, 0) FROM pg_stat_database d $statements_from WHERE d.datname LIKE 'bench_checkout_%' ORDER BY 1" | grep bench_ >"$1"
}
pg_xacts "$work/xacts-before.txt"
# CPU seconds (user + system) of the server process and of all PostgreSQL, RabbitMQ and Redis
# processes on the machine (the broker and the cache share the two cores with the rest).
ticks() { local t=0 p; for p in "$@"; do [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
named_ticks() { local pids; mapfile -t pids < <(pgrep -x "$1" || true); ticks "${pids[@]}"; }
pg_ticks() { named_ticks postgres; }
# Thread switches of the server (voluntary and involuntary, summed over its threads): on SQLite each
# statement is a hop to a connection's thread and back, so this counts hops as well as waits.
# A thread that ends during the run takes its count with it (sqlx keeps its connections open).
switches() {
  local t=0 f n
  for f in /proc/"$1"/task/*/status; do
    n=$(awk '/ctxt_switches/ { s += $2 } END { print s + 0 }' "$f" 2>/dev/null) || n=0
    t=$((t + n))
  done
  echo "$t"
}
cpu_server_before=$(ticks "$server"); cpu_pg_before=$(pg_ticks); switches_before=$(switches "$server")
cpu_broker_before=$(named_ticks beam.smp); cpu_redis_before=$(named_ticks redis-server)
python3 bench/checkout.py metrics "$base" "$work/metrics-before.txt"
t=${BENCH_WRK_THREADS:-2}; [ "$connections" -lt "$t" ] && t=$connections
load=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== POST /api/v1/orders, place + pay ($mode, $duration, $connections connections, $t threads, $users users, $skus SKUs)"
if [ -n "$restart_at" ]; then
  (
    sleep "$restart_at"
    echo "-- drill: RabbitMQ stopped at ${restart_at} s for ${broker_down} s" >&2
    rabbitmqctl -q stop_app >/dev/null
    sleep "$broker_down"
    rabbitmqctl -q start_app >/dev/null
    echo "-- drill: RabbitMQ started again" >&2
  ) &
  drill=$!
fi
reading=""
if [ "$readers" -gt 0 ]; then
  ${load_cpus:+taskset -c "$load_cpus"} wrk -t1 -c"$readers" -d"$duration" --timeout 10s --latency \
    -s bench/pages.lua "$base" >"$work/reads.txt" &
  reading=$!
fi
CHECKOUT_DIR=$work ${load_cpus:+taskset -c "$load_cpus"} wrk -t"$t" -c"$connections" -d"$duration" --timeout 10s --latency \
  -s bench/checkout.lua "$base" >"$work/wrk.txt"
grep -E 'Requests/sec|Latency  |Socket errors|statuses|orders/s|latency ms|sample' "$work/wrk.txt" || true
if [ -n "$reading" ]; then
  wait "$reading"
  echo "-- meanwhile, $readers connections reading list pages and searches (bench/pages.lua):"
  grep -E 'Requests/sec|Latency  |Socket errors|Non-2xx|     50%|     99%' "$work/reads.txt" || true
fi
cpu_server=$(( $(ticks "$server") - cpu_server_before )); cpu_pg=$(( $(pg_ticks) - cpu_pg_before ))
switches_server=$(( $(switches "$server") - switches_before ))
cpu_broker=$(( $(named_ticks beam.smp) - cpu_broker_before )); cpu_redis=$(( $(named_ticks redis-server) - cpu_redis_before ))
if [ -n "$drill" ]; then
  wait "$drill" || { echo "error: the broker drill failed (see above)" >&2; exit 1; }
  drill=""
fi
python3 bench/checkout.py metrics "$base" "$work/metrics-after.txt"
sleep 1; pg_xacts "$work/xacts-after.txt" # backends report their counts at most once a second

ok=$(cat "$work"/ok-*.txt | wc -l)
hz=$(getconf CLK_TCK)
echo "-- CPU during the run: emporium $(awk -v t="$cpu_server" -v hz="$hz" -v ok="$ok" 'BEGIN { printf "%.1f s (%.2f ms per order)", t / hz, ok ? t / hz * 1000 / ok : 0 }')$(
  [ "$mode" = postgres ] && awk -v t="$cpu_pg" -v b="$cpu_broker" -v r="$cpu_redis" -v hz="$hz" -v ok="$ok" 'BEGIN {
    per = ok ? 1000 / ok / hz : 0
    printf ", all postgres processes %.1f s (%.2f ms per order; other agents'"'"' databases included), RabbitMQ %.1f s (%.2f ms), Redis %.1f s (%.2f ms)", t / hz, t * per, b / hz, b * per, r / hz, r * per }')"
echo "-- thread switches of emporium during the run: $switches_server ($(awk -v n="$switches_server" -v ok="$ok" 'BEGIN { printf "%.1f", ok ? n / ok : 0 }') per order)"
echo "-- where the time goes (means over the run; p50/p99 from the last minute's summaries)"
python3 bench/checkout.py breakdown "$work/metrics-before.txt" "$work/metrics-after.txt"

# Requests wrk gave up on at the end were cancelled on the server; the check waits for recovery.
if [ "$mode" = postgres ]; then
  echo "-- PostgreSQL transactions committed during the run, per 201 (each database; all share one WAL)$(
    [ -n "$statements_from" ] && echo ", and statements (pg_stat_statements)")"
  join "$work/xacts-before.txt" "$work/xacts-after.txt" | awk -v ok="$ok" -v st="$statements_from" '
    function line(name, tx, calls) {
      printf "  %-28s %8d  %6.1f per order", name, tx, tx / (ok ? ok : 1)
      if (st != "") printf "  %6.1f statements per order", calls / (ok ? ok : 1)
      printf "\n"
    }
    { d = $4 - $2; c = $5 - $3; t += d; tc += c; line($1, d, c) } END { line("total", t, tc) }'
fi
python3 bench/checkout.py check "$mode" "$work"
if grep -q 'non-201: [1-9]' "$work/wrk.txt"; then echo "error: non-201 answers (samples above)" >&2; exit 1; fi
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -m), load average before the run $load; $(
  if [ -n "$server_cpus" ]; then echo "server on CPUs $server_cpus, wrk on CPUs ${load_cpus:-any}"; else echo "wrk and server share the cores"; fi); mode $mode, peer calls ${EMPORIUM_PEER_CALLS:-direct}$(
  [ "$mode" = postgres ] && echo ", database URL parameters: ${pg_params:-none}")"
