#!/usr/bin/env bash
# What the built-in console (EMPORIUM_CONSOLE) costs: the embedded release binary on the demo
# catalog, wrk on a cached product read and on the storefront home page, with the console on and
# off, alternating rounds so machine noise hits both alike. Copy the figures into
# docs/benchmarks.md.
#   bench/console.sh [duration] [rounds]          # defaults: 10s 2
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10s}
rounds=${2:-2}
connections=32

if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk (Debian)..." >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends wrk >/dev/null \
    || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
fi
echo "building the release binary (first build takes several minutes)..." >&2
# shellcheck source=bench/lib.sh
. bench/lib.sh
bin=$(emporium_binary)

work=$(mktemp -d)
server=""
cleanup() { [ -n "$server" ] && { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }; rm -rf "$work"; }
trap cleanup EXIT

# The edge rate limit is per client and wrk is one client: lift it to measure the app.
export RUST_LOG=warn EMPORIUM_LOG_FORMAT=json EMPORIUM_DATA_DIR="$work/data" EMPORIUM_RATE_LIMIT_PER_MINUTE=0
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
start_server() {
  EMPORIUM_CONSOLE=$1 EMPORIUM_LISTEN="127.0.0.1:$port" "$bin" serve >"$work/server.log" 2>&1 &
  server=$!
  for _ in $(seq 1 300); do curl -fs "$base/health/ready" >/dev/null && return; sleep 0.1; done
  echo "server did not start:" >&2; tail -20 "$work/server.log" >&2; exit 1
}
stop_server() { kill "$server"; wait "$server" 2>/dev/null || true; server=""; }
rss_mb() { awk '/VmRSS/{printf "%.0f", $2/1024}' "/proc/$server/status"; }

# Seeds the demo catalog on the first start; later starts reuse it.
start_server off
product=$(curl -fs "$base/api/v1/catalog/products?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])')
stop_server

printf '| Console | Round | Read | Req/s | p50 | p99 | RSS after |\n|---|---:|---|---:|---:|---:|---:|\n'
for round in $(seq 1 "$rounds"); do
  for console in on off; do
    start_server "$console"
    for target in "product by id (cached)|$base/api/v1/catalog/products/$product" "storefront home page|$base/"; do
      name=${target%%|*} url=${target#*|}
      wrk -t1 -c"$connections" -d2s "$url" >/dev/null # warm-up (and fill the console's buffers)
      out=$(wrk -t1 -c"$connections" -d"$duration" --latency "$url")
      if grep -q 'Non-2xx' <<<"$out"; then echo "error: non-2xx answers for $name" >&2; exit 1; fi
      rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
      p50=$(awk '$1=="50%"{print $2}' <<<"$out")
      p99=$(awk '$1=="99%"{print $2}' <<<"$out")
      printf '| %s | %s | %s | %s | %s | %s | %s MB |\n' "$console" "$round" "$name" "$rps" "$p50" "$p99" "$(rss_mb)"
    done
    stop_server
  done
done
echo
echo "machine: $(nproc) cores; wrk (1 thread, $connections connections, $duration) and the server share them; load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
