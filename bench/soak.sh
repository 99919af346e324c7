#!/usr/bin/env bash
# Memory soak of the embedded binary: does RSS level off under a long run of mixed traffic?
#   bench/soak.sh [requests] [products]     # defaults: 100000 requests, 10000 products
# Builds the release binary (BENCH_SKIP_BUILD=1 reuses target/release/emporium), seeds a fresh
# data directory, starts `emporium serve` with its default settings (only the per-client edge
# rate limit is lifted: the load comes from one address), waits 10 s idle, then runs bench/soak.py:
# storefront pages, product and list pages with many distinct filters, searches with many distinct
# terms, guest carts, failed sign-ins, stock reads and 404s on 8 connections, RSS sampled every
# second. The CSV and the plot land in target/bench/soak/ (rss.csv, rss.svg); copy the figures
# into docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-100000}
products=${2:-10000}
out=target/bench/soak
mkdir -p "$out"
# shellcheck source=bench/lib.sh
. bench/lib.sh
bin=$(emporium_binary)

work=$(mktemp -d)
server=""
cleanup() { [ -n "$server" ] && { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }; rm -rf "$work"; }
trap cleanup EXIT

export RUST_LOG=warn EMPORIUM_LOG_FORMAT=json EMPORIUM_SEED_DEMO=false EMPORIUM_DATA_DIR="$work/data" \
  EMPORIUM_RATE_LIMIT_PER_MINUTE=0
echo "seeding $products products..." >&2
"$bin" seed --products "$products" --seed 5 >/dev/null

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
EMPORIUM_LISTEN="127.0.0.1:$port" "$bin" serve >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 300); do curl -fs "$base/health/ready" >/dev/null && break; sleep 0.1; done
curl -fs "$base/health/ready" >/dev/null || { echo "server did not start:" >&2; tail -20 "$work/server.log" >&2; exit 1; }
rss() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$server/status"; }
echo "== RSS idle: $(rss) MiB at start"
sleep 10
echo "== RSS idle: $(rss) MiB after 10 s"
echo "== $requests mixed requests, 8 connections ($products products)"
python3 bench/soak.py run "$base" "$server" "$requests" "$out"
sleep 10
echo "== RSS 10 s after the load: $(rss) MiB"
echo "plot: $out/rss.svg, samples: $out/rss.csv"
if grep -q '"level":"ERROR"' "$work/server.log"; then echo "errors in the server log:" >&2; grep '"level":"ERROR"' "$work/server.log" | head -5 >&2; exit 1; fi
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; load average $(cut -d' ' -f1-3 /proc/loadavg); client and server share the cores"
