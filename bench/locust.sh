#!/usr/bin/env bash
# The seeds' load mix (bench/locust/locustfile.py: 30% register/login/profile, 50% browse/search/
# product pages, 20% cart and checkout with the test cards), headless, bounded in users and time,
# against embedded mode and the multi-process topology, with a few browser shoppers alongside.
#
#   bench/locust.sh [users] [duration] [modes]      # defaults: 40 60s "embedded multi"
#
# Binary: $EMPORIUM_BIN, else target/release/emporium, built first (~10 min on 2 cores from
# scratch) unless BENCH_SKIP_BUILD=1.
# Locust lives in its own venv (target/locust-venv, pinned; installed once). For each mode:
# start the server on a free port with a fresh data directory / fresh databases, create an admin,
# bench/locust/setup_pool.py restocks the SKUs checkouts buy and pre-creates verified users with a
# saved card, then Locust runs the mix while LOCUST_BROWSERS (default 2; 0: none) Chromium
# shoppers (bench/locust/shoppers.mjs, playwright-core from tests/e2e) buy through the pages.
#
# Load-test settings, not production ones (said next to the figures in docs/benchmarks.md):
# cheap argon2 (EMPORIUM_ARGON2_MEMORY_KIB=8192, EMPORIUM_ARGON2_ITERATIONS=1, as .ci/multi-topology.sh),
# the per-address sign-in limit and the edge limiter lifted (all users come from 127.0.0.1),
# 1-hour access tokens, RUST_LOG=warn.
#
# Output in target/bench/locust/: <mode>_stats.csv (Locust), <mode>.md (the table for
# docs/benchmarks.md), <mode>-browsers.json, <mode>-server.log, summary.md. Exit 1 when any request
# or browser journey failed.
set -euo pipefail
cd "$(dirname "$0")/.."
users=${1:-40}
duration=${2:-60s}
modes=${3:-embedded multi}
browsers=${LOCUST_BROWSERS:-2}
pool_users=${LOCUST_POOL_USERS:-$((users + 10))}
out=target/bench/locust
mkdir -p "$out"
locust_version=2.47.0

venv=target/locust-venv
if ! "$venv/bin/locust" --version 2>/dev/null | grep -q "locust $locust_version"; then
  echo "installing locust $locust_version into $venv..." >&2
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "locust==$locust_version"
fi

# shellcheck source=bench/lib.sh
. bench/lib.sh
bin=$(emporium_binary)
echo "binary: $bin" >&2

if [ "$browsers" != 0 ] && { [ ! -d tests/e2e/node_modules/playwright-core ] || [ ! -x /usr/bin/chromium ]; }; then
  bash .ci/install-e2e.sh
fi

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

pg=${DEV_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}
work=$(mktemp -d)
server=""
prefix=""
stop_server() {
  if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then
    kill -TERM "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  server=""
  if [ -n "$prefix" ]; then
    for ctx in identity catalog inventory cart ordering payments notifications; do
      psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS ${prefix}_$ctx WITH (FORCE)" >/dev/null 2>&1 || true
    done
    if command -v redis-cli >/dev/null; then
      redis-cli --scan --pattern "$EMPORIUM_NAMESPACE:*" | xargs -r redis-cli del >/dev/null 2>&1 || true
    fi
    prefix=""
  fi
}
# shellcheck disable=SC2317 # called by the trap
cleanup() { stop_server; rm -rf "$work"; }
trap cleanup EXIT

export RUST_LOG=warn EMPORIUM_LOG_FORMAT=json \
  EMPORIUM_ARGON2_MEMORY_KIB=8192 EMPORIUM_ARGON2_ITERATIONS=1 EMPORIUM_AUTH_RATE_PER_MINUTE=100000 \
  EMPORIUM_RATE_LIMIT_PER_MINUTE=0 EMPORIUM_ACCESS_TOKEN_TTL_SECS=3600
unset EMPORIUM_SMTP_URL # verification tokens come from the dev mailbox
admin_email=admin@locust.test
admin_password="locust-admin-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"

wait_ready() {
  local url=$1 log=$2
  for _ in $(seq 1 900); do
    if curl -fs -o /dev/null "$url/health/ready"; then return 0; fi
    kill -0 "$server" 2>/dev/null || break
    sleep 0.2
  done
  echo "the server did not become ready; tail of $log:" >&2
  tail -n 30 "$log" | cut -c1-400 >&2
  exit 1
}

status=0
summary=$out/summary.md
: >"$summary"
for mode in $modes; do
  port=$(free_port)
  base="http://127.0.0.1:$port"
  log=$out/$mode-server.log
  case $mode in
    embedded)
      mkdir -p "$work/$mode"
      printf '%s\n' "$admin_password" |
        EMPORIUM_DATA_DIR="$work/$mode" "$bin" admin create --email "$admin_email" --name "Locust Admin" >"$log" 2>&1 ||
        { echo "admin create failed:" >&2; tail -n 5 "$log" >&2; exit 1; }
      EMPORIUM_DATA_DIR="$work/$mode" EMPORIUM_LISTEN="127.0.0.1:$port" EMPORIUM_PUBLIC_URL="$base" \
        "$bin" serve >>"$log" 2>&1 &
      server=$!
      wait_ready "$base" "$log"
      ;;
    multi)
      prefix="bench_locust_$$"
      export DEV_POSTGRES_URL="$pg" DEV_DATABASE_PREFIX="$prefix" EMPORIUM_NAMESPACE="bench-locust-$$" \
        EMPORIUM_QUEUE_EXPIRY_SECS=600 EMPORIUM_PUBLIC_URL="$base"
      # `emporium dev` picks 127.0.0.1:18081..18087 when they look free; another `emporium dev`
      # starting at the same moment can take them first, and then this gateway would proxy to
      # the other run's contexts. Start again when a context could not listen.
      for attempt in 1 2 3; do
        "$bin" dev --topology multi --listen "127.0.0.1:$port" >"$log" 2>&1 &
        server=$!
        wait_ready "$base" "$log"
        sleep 2
        grep -q 'cannot listen on' "$log" || break
        echo "a context of $mode could not listen (port race with another emporium dev); restarting ($attempt)" >&2
        stop_server
        prefix="bench_locust_$$_$attempt"
        export DEV_DATABASE_PREFIX="$prefix"
        [ "$attempt" != 3 ] || { echo "gave up: ports taken" >&2; exit 1; }
      done
      printf '%s\n' "$admin_password" |
        DATABASE_URL="$pg/${prefix}_identity" "$bin" admin create --email "$admin_email" --name "Locust Admin" >>"$log" 2>&1 ||
        { echo "admin create failed:" >&2; tail -n 5 "$log" >&2; exit 1; }
      unset EMPORIUM_PUBLIC_URL
      ;;
    *) echo "unknown mode $mode (embedded, multi)" >&2; exit 2 ;;
  esac
  echo "== $mode: ready on $base" >&2

  LOCUST_RUN="$mode-$$" LOCUST_BROWSER_USERS=$browsers LOCUST_ADMIN_EMAIL=$admin_email \
    LOCUST_ADMIN_PASSWORD=$admin_password python3 bench/locust/setup_pool.py "$base" "$work/pool-$mode.json" "$pool_users" 50

  load_before=$(cut -d' ' -f1-3 /proc/loadavg)
  browser_pid=""
  rm -f "$out/$mode-browsers.json"
  if [ "$browsers" != 0 ]; then
    node bench/locust/shoppers.mjs "$base" "$work/pool-$mode.json" "${duration%s}" "$browsers" "$out/$mode-browsers.json" &
    browser_pid=$!
  fi
  echo "== $mode: locust, $users users, $duration, $browsers browser shoppers (load average before: $load_before)" >&2
  started=$SECONDS
  locust_rc=0
  LOCUST_POOL="$work/pool-$mode.json" "$venv/bin/locust" -f bench/locust/locustfile.py --host "$base" \
    --headless --users "$users" --spawn-rate "$users" --run-time "$duration" --stop-timeout 10 \
    --csv "$out/$mode" --only-summary --loglevel WARNING >"$out/$mode-locust.log" 2>&1 || locust_rc=$?
  load_after=$(cut -d' ' -f1-3 /proc/loadavg)
  browser_rc=0
  if [ -n "$browser_pid" ]; then wait "$browser_pid" || browser_rc=$?; fi
  elapsed=$((SECONDS - started))
  stop_server

  title="$mode — $(date -u +%F), $users Locust users, $duration, $browsers browser shoppers, $(basename "$(dirname "$(dirname "$bin")")")/$(basename "$(dirname "$bin")") binary"
  {
    python3 bench/locust/report.py "$out/$mode" "$title" "$out/$mode-browsers.json"
    echo
    echo "Load average (1/5/15 min) before: $load_before; after: $load_after; $(nproc) cores shared by Locust, Chromium, the server(s), PostgreSQL/Redis/RabbitMQ (multi) and other work. Run took ${elapsed} s; think time ${LOCUST_WAIT_MIN:-0.1}–${LOCUST_WAIT_MAX:-0.5} s."
    if grep -q 'CPU usage above' "$out/$mode-locust.log"; then
      echo
      echo "Locust itself reported CPU usage above 90% (one Python process): the load generator, not only the server, limited the rate."
    fi
    echo
  } | tee "$out/$mode.md" >>"$summary"
  cat "$out/$mode.md"
  python3 bench/locust/report.py --check "$out/$mode" || status=1
  [ "$locust_rc" = 0 ] || { echo "locust exited with $locust_rc (log: $out/$mode-locust.log)" >&2; status=1; }
  [ "$browser_rc" = 0 ] || status=1
  if [ -f "$out/$mode-browsers.json" ] && ! python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["failures"] > 0)' "$out/$mode-browsers.json"; then
    echo "browser journeys failed in $mode (see $out/$mode-browsers.json)" >&2
    status=1
  fi
done
echo "summary: $summary" >&2
exit "$status"
