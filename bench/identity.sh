#!/usr/bin/env bash
# Benchmarks the embedded build with wrk: `/health/live` (the HTTP stack alone) and
# `GET /api/v1/users/me` (JWT verification + one database read).
# Usage: bench/identity.sh [duration, default 15s] [connections, default 32]
# Prints RPS and latency percentiles; copy the figures into docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-15s}
connections=${2:-32}

if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk (Debian)..." >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends wrk >/dev/null \
    || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
fi

echo "building the release binary (first build takes several minutes)..." >&2
# shellcheck source=bench/lib.sh
. bench/lib.sh
bin=$(emporium_binary)

data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
EMPORIUM_DATA_DIR="$data" EMPORIUM_LISTEN="127.0.0.1:$port" RUST_LOG=warn EMPORIUM_LOG_FORMAT=json EMPORIUM_RATE_LIMIT_PER_MINUTE=0 \
  "$bin" serve >"$data/server.log" 2>&1 &
server=$!
cleanup() { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$data"; }
trap cleanup EXIT

for _ in $(seq 1 100); do curl -fs "$base/health/live" >/dev/null && break; sleep 0.1; done
curl -fs "$base/health/live" >/dev/null || { echo "server did not start; see $data/server.log" >&2; exit 1; }

echo "creating a bench user..." >&2
email="bench-$RANDOM@example.com"
curl -fs "$base/api/v1/auth/register" -H 'content-type: application/json' \
  -d "{\"email\":\"$email\",\"password\":\"correct horse battery staple\",\"name\":\"Bench\"}" >/dev/null
token=$(curl -fs "$base/api/v1/dev/mailbox?to=$email" | python3 -c 'import json,sys; b=json.load(sys.stdin)[0]["body"]; print([l for l in b.splitlines() if len(l.strip())==43][0].strip())')
curl -fs "$base/api/v1/auth/verify-email" -H 'content-type: application/json' -d "{\"token\":\"$token\"}" >/dev/null
access=$(curl -fs "$base/api/v1/auth/login" -H 'content-type: application/json' \
  -d "{\"email\":\"$email\",\"password\":\"correct horse battery staple\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

run() {
  local name=$1; shift
  echo "== $name ($duration, $connections connections, 2 threads)"
  out=$(wrk -t2 -c"$connections" -d"$duration" --latency "$@")
  echo "$out" | grep -E 'Requests/sec|Latency  |50%|90%|99%|Non-2xx|Socket errors' || true
  if echo "$out" | grep -q 'Non-2xx'; then echo "error: non-2xx answers during $name" >&2; exit 1; fi
}

run "GET /health/live" "$base/health/live"
run "GET /api/v1/users/me" -H "Authorization: Bearer $access" "$base/api/v1/users/me"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -m); wrk and server share the cores"
