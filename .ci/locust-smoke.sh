#!/usr/bin/env bash
# CI smoke of the Locust load mix (bench/locust/locustfile.py), not the full run (bench/locust.sh):
# the debug binary in embedded mode on a free port with a fresh data directory, a small pool of
# pre-created users (bench/locust/setup_pool.py), then 10 seconds of the mix with 6 users.
# Fails on any failed request or when no request was made. The server and its data directory are
# removed whatever happens. Locust comes from its own venv (target/locust-venv, pinned).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=target/debug/emporium
[ -x "$bin" ] || cargo build --quiet --locked -p emporium
locust_version=2.47.0
venv=target/locust-venv
if ! "$venv/bin/locust" --version 2>/dev/null | grep -q "locust $locust_version"; then
  echo "installing locust $locust_version into $venv..."
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "locust==$locust_version"
fi

out=target/ci/locust-smoke
mkdir -p "$out"
data=$(mktemp -d)
server=""
# shellcheck disable=SC2317 # called by the trap
cleanup() {
  if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then
    kill -TERM "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$data"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
base="http://127.0.0.1:$port"
# Load-test settings: cheap argon2 and no per-address limits (every user comes from 127.0.0.1).
export EMPORIUM_DATA_DIR="$data/data" EMPORIUM_LISTEN="127.0.0.1:$port" EMPORIUM_PUBLIC_URL="$base" \
  RUST_LOG=warn EMPORIUM_LOG_FORMAT=json EMPORIUM_ARGON2_MEMORY_KIB=8192 EMPORIUM_ARGON2_ITERATIONS=1 \
  EMPORIUM_AUTH_RATE_PER_MINUTE=100000 EMPORIUM_RATE_LIMIT_PER_MINUTE=0 EMPORIUM_ACCESS_TOKEN_TTL_SECS=3600
unset EMPORIUM_SMTP_URL
admin_email=admin@locust.test
admin_password="locust-admin-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
log=$out/server.log
printf '%s\n' "$admin_password" | "$bin" admin create --email "$admin_email" --name "Locust Admin" >"$log" 2>&1 ||
  { echo "admin create failed:" >&2; tail -n 5 "$log" >&2; exit 1; }
"$bin" serve >>"$log" 2>&1 &
server=$!
ready=0
for _ in $(seq 1 300); do
  if curl -fs -o /dev/null "$base/health/ready"; then ready=1; break; fi
  kill -0 "$server" 2>/dev/null || break
  sleep 0.2
done
if [ "$ready" != 1 ]; then
  echo "the server did not become ready; tail of $log:" >&2
  tail -n 30 "$log" | cut -c1-400 >&2
  exit 1
fi

LOCUST_RUN="smoke-$$" LOCUST_ADMIN_EMAIL=$admin_email LOCUST_ADMIN_PASSWORD=$admin_password \
  python3 bench/locust/setup_pool.py "$base" "$data/pool.json" 10 10
started=$SECONDS
locust_rc=0
LOCUST_POOL="$data/pool.json" "$venv/bin/locust" -f bench/locust/locustfile.py --host "$base" \
  --headless --users 6 --spawn-rate 6 --run-time 10s --stop-timeout 10 \
  --csv "$out/smoke" --only-summary --loglevel WARNING >"$out/locust.log" 2>&1 || locust_rc=$?
python3 bench/locust/report.py --check "$out/smoke" ||
  { tail -n 40 "$out/locust.log" >&2; exit 1; }
[ "$locust_rc" = 0 ] || { echo "locust exited with $locust_rc:" >&2; tail -n 40 "$out/locust.log" >&2; exit 1; }
echo "locust smoke: OK ($((SECONDS - started)) s; table in $out/smoke_stats.csv)"
