#!/usr/bin/env bash
# What the gateway's hop costs, binary against binary: an embedded server as every upstream and a
# gateway in front of it (rate limiter off unless BENCH_LIMITER=1), both on CPU 0, wrk on CPU 1 (one
# core: everything shares it). Each run reads one cached product through the gateway for N seconds
# on 32 connections and prints requests/s and the CPU time each process spent per request (from
# /proc: user + system, and the gateway's user part). On a host whose speed drifts by a fifth from
# minute to minute, the last column is the one to compare: the gateway's CPU divided by the
# upstream's in the same run, where the upstream does the same work for every binary compared (as
# long as the change is in the gateway). Two or more binaries are run in alternation (A B B A ...),
# so a slow minute of the host does not land on one of them only.
#   bench/gateway-hop.sh [seconds] [rounds] [binary...]
# Default: 8 s, 2 rounds, $EMPORIUM_BIN or the release build. Needs Redis at REDIS_URL (the gateway
# starts only with it) and wrk. BENCH_LIMITER=1 turns the gateway's shared (Redis) rate limiter on,
# with a quota no run reaches (one client: wrk's address), as production runs it. The gateway's
# micro-cache is off here (it would answer the read without the hop this script measures).
# Copy the figures into docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-8}
rounds=${2:-2}
shift $(($# < 2 ? $# : 2))

fail() { echo "error: $*" >&2; exit 1; }
case "$seconds" in '' | *[!0-9]* | 0) fail "seconds must be a positive number, got '$seconds'" ;; esac
case "$rounds" in '' | *[!0-9]* | 0) fail "rounds must be a positive number, got '$rounds'" ;; esac
for tool in wrk curl python3 taskset; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is missing (Debian: apt-get install wrk curl python3 util-linux)"
done
# shellcheck source=bench/lib.sh
. bench/lib.sh
binaries=("$@")
[ ${#binaries[@]} -gt 0 ] || binaries=("$(emporium_binary)")
for b in "${binaries[@]}"; do [ -x "$b" ] || fail "$b is not an executable binary"; done
case "${BENCH_LIMITER:-0}" in
  0) limiter=(EMPORIUM_RATE_LIMIT_PER_MINUTE=0) ;;
  1) limiter=(EMPORIUM_RATE_LIMIT_PER_MINUTE=60000000 EMPORIUM_RATE_LIMIT_BURST=1000000) ;;
  *) fail "BENCH_LIMITER must be 0 or 1, got '${BENCH_LIMITER}'" ;;
esac
if [ "$(nproc)" -ge 2 ]; then servers=(taskset -c 0) load=(taskset -c 1); else servers=() load=(); fi

work=$(mktemp -d)
pids=()
stop() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  pids=()
}
trap 'stop; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
await() {
  for _ in $(seq 1 300); do
    curl -fs -o /dev/null "$1" && return 0
    sleep 0.2
  done
  fail "$2 did not answer $1 within 60 s (logs in $work)"
}
# cpu_ticks <pid> [user]: user + system clock ticks of a process (user only with a second argument).
cpu_ticks() { awk -v u="${2:-}" '{print (u == "" ? $14 + $15 : $14)}' "/proc/$1/stat"; }

echo "| binary | round | requests/s | gateway CPU per request | of which user | upstream CPU per request | gateway ÷ upstream |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for round in $(seq 1 "$rounds"); do
  order=("${binaries[@]}")
  # Every other round backwards: A B, B A, A B...
  if [ $((round % 2)) = 0 ]; then
    order=()
    for ((i = ${#binaries[@]} - 1; i >= 0; i--)); do order+=("${binaries[$i]}"); done
  fi
  for bin in "${order[@]}"; do
    data="$work/data-$round-$(basename "$bin")"
    settings=(RUST_LOG=warn EMPORIUM_SEED_DEMO=false EMPORIUM_RATE_LIMIT_PER_MINUTE=0 EMPORIUM_DATA_DIR="$data")
    env "${settings[@]}" "$bin" seed --products 2000 --seed 7 >"$work/seed.log" 2>&1 \
      || { tail -n 20 "$work/seed.log" >&2; fail "seeding failed with $bin"; }
    port=$(free_port)
    gw_port=$(free_port)
    base="http://127.0.0.1:$port"
    env "${settings[@]}" EMPORIUM_LISTEN="127.0.0.1:$port" "${servers[@]}" "$bin" serve >"$work/server.log" 2>&1 &
    pids+=($!)
    upstream=$!
    upstreams=()
    for context in identity catalog inventory cart ordering payments notifications; do
      upstreams+=("EMPORIUM_UPSTREAM_${context^^}=$base")
    done
    env "${settings[@]}" "${limiter[@]}" "${upstreams[@]}" EMPORIUM_GATEWAY_CACHE_MB=0 REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}" \
      EMPORIUM_WEB_SESSION_KEY="$(python3 -c 'import secrets; print(secrets.token_hex(64))')" \
      EMPORIUM_LISTEN="127.0.0.1:$gw_port" "${servers[@]}" "$bin" serve --service gateway >"$work/gateway.log" 2>&1 &
    pids+=($!)
    gateway=$!
    await "$base/health/ready" "the upstream"
    await "http://127.0.0.1:$gw_port/health/live" "the gateway (it needs Redis at REDIS_URL)"
    id=$(curl -fs "$base/api/v1/catalog/products?limit=1&sort=rating" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])')
    url="http://127.0.0.1:$gw_port/api/v1/catalog/products/$id"
    "${load[@]}" wrk -t1 -c32 -d2s "$url" >/dev/null # warm-up: caches, pooled connections
    g0=$(cpu_ticks "$gateway") gu0=$(cpu_ticks "$gateway" user) u0=$(cpu_ticks "$upstream")
    out=$("${load[@]}" wrk -t1 -c32 -d"${seconds}s" "$url")
    g1=$(cpu_ticks "$gateway") gu1=$(cpu_ticks "$gateway" user) u1=$(cpu_ticks "$upstream")
    stop
    python3 - "$bin" "$round" "$out" $((g1 - g0)) $((gu1 - gu0)) $((u1 - u0)) <<'PY'
import os, re, sys
binary, round_, out = sys.argv[1], sys.argv[2], sys.argv[3]
gateway, gateway_user, upstream = (int(v) for v in sys.argv[4:7])
requests = int(re.search(r"(\d+) requests in", out).group(1))
rps = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))
if "Non-2xx" in out or "Socket errors" in out:
    sys.exit(f"wrk saw errors through the gateway:\n{out}")
per = 1e6 / os.sysconf("SC_CLK_TCK") / requests
ratio = f"{gateway / upstream:.2f}" if upstream else "—"
print(f"| {binary} | {round_} | {rps:,.0f} | {gateway * per:.1f} µs | {gateway_user * per:.1f} µs | {upstream * per:.1f} µs | {ratio} |")
PY
  done
done
