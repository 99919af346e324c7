#!/usr/bin/env bash
# The production topology on one machine, as `emporium dev --topology multi` runs it: seven
# context processes on the local PostgreSQL, RabbitMQ and Redis, and the gateway on
# 127.0.0.1:8080 in front. Then:
#   1. the README walkthrough, verbatim, through the gateway;
#   2. the browser journeys (tests/e2e) through the gateway (MULTI_TOPOLOGY_E2E=0 skips them);
#   3. Ctrl-C's path (SIGTERM to `emporium dev`): every process stops and none is left behind;
#   4. `emporium dev` SIGKILLed: its processes still stop (they are tied to it by the kernel).
# Uses the debug binary built by the test step (built here only when missing). The databases
# (ci_multi_<pid>_<context>) are dropped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=target/debug/emporium
[ -x "$bin" ] || cargo build --quiet --locked -p emporium
api=http://127.0.0.1:8080
if curl -s -o /dev/null "$api/health/live"; then
  echo "something already listens on 127.0.0.1:8080; stop it to run the multi-topology check" >&2
  exit 1
fi

pg=${DEV_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}
prefix="ci_multi_$$"
export DEV_POSTGRES_URL="$pg" DEV_DATABASE_PREFIX="$prefix"
export EMPORIUM_NAMESPACE="ci-multi-$$" EMPORIUM_QUEUE_EXPIRY_SECS=600
# The browser tests sign in many times from one address; production keeps the strong defaults.
export EMPORIUM_ARGON2_MEMORY_KIB=8192 EMPORIUM_ARGON2_ITERATIONS=1 EMPORIUM_AUTH_RATE_PER_MINUTE=600
export RUST_LOG="${RUST_LOG:-info}" EMPORIUM_LOG_FORMAT=json
mkdir -p target/ci
log=target/ci/multi-topology.log
work=$(mktemp -d)
dev=""

drop_databases() {
  for ctx in identity catalog inventory cart ordering payments notifications; do
    psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS ${prefix}_$ctx WITH (FORCE)" >/dev/null 2>&1 || true
  done
}
cleanup() {
  if [ -n "$dev" ] && kill -0 "$dev" 2>/dev/null; then
    kill -TERM "$dev" 2>/dev/null || true
    wait "$dev" 2>/dev/null || true
  fi
  drop_databases
  # The catalog's cache generation keys never expire: remove this run's keys.
  if command -v redis-cli >/dev/null; then
    redis-cli --scan --pattern "$EMPORIUM_NAMESPACE:*" | tr '\n' '\0' | xargs -0 -r redis-cli del >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# Starts `emporium dev --topology multi` in the background and waits for the gateway to report
# every upstream ready.
start() {
  "$bin" dev --topology multi "$@" >>"$log" 2>&1 &
  dev=$!
  for _ in $(seq 1 900); do
    if curl -fs -o /dev/null "$api/health/ready"; then return 0; fi
    if ! kill -0 "$dev" 2>/dev/null; then break; fi
    sleep 0.2
  done
  echo "the multi-process topology did not become ready; tail of $log:" >&2
  tail -n 40 "$log" | cut -c1-400 >&2
  exit 1
}

# The pids `emporium dev` reported for the run started last.
children() {
  grep -o 'dev: started [a-z]* (pid [0-9]*)' "$log" | tail -n 8 | grep -o '[0-9]*' || true
}

left_behind() {
  local left=""
  for pid in "$@"; do
    if kill -0 "$pid" 2>/dev/null; then left="$left $pid"; fi
  done
  echo "$left"
}

: >"$log"
started=$SECONDS
start --seed-demo
echo "multi-process topology ready in $((SECONDS - started)) s (log: $log)"
pids=$(children)
[ "$(wc -w <<<"$pids")" = 8 ] || { echo "expected 8 processes, found: $pids" >&2; exit 1; }
curl -fs "$api/health/ready" | python3 -c '
import json, sys
report = json.load(sys.stdin)
print("upstreams:", ", ".join(name + " " + u["status"] for name, u in sorted(report["upstreams"].items())))'

echo "== README walkthrough through the gateway"
awk '/<!-- walkthrough:start -->/{on=1; next} /<!-- walkthrough:end -->/{on=0} on && !/^```/' README.md >"$work/walkthrough.sh"
[ -s "$work/walkthrough.sh" ] || { echo "no walkthrough block found in README.md" >&2; exit 1; }
# A failing step is traced (the commands it ran, with their variables) and the log's warnings and
# refused requests are shown, so a red run says which request failed and why.
if ! out=$(BASH_XTRACEFD=3 bash -x -euo pipefail "$work/walkthrough.sh" 3>"$work/trace"); then
  echo "$out"
  echo "walkthrough through the gateway failed; its last commands:" >&2
  tail -n 12 "$work/trace" | cut -c1-400 >&2
  echo "warnings, errors and 4xx/5xx answers in $log:" >&2
  grep -E '"level":"(WARN|ERROR)"|"status":[45][0-9][0-9]' "$log" | tail -n 30 | cut -c1-600 >&2 || true
  exit 1
fi
echo "$out"
grep -q '"email":"ada@example.com"' <<<"$out" || { echo "walkthrough: /me did not answer" >&2; exit 1; }
[ "$(tail -n1 <<<"$out")" = "401" ] || { echo "walkthrough: reused refresh token was not refused" >&2; exit 1; }
echo "README walkthrough through the gateway: OK"

if [ "${MULTI_TOPOLOGY_E2E:-1}" != 0 ] && [ -d tests/e2e ] && ls tests/e2e/*.test.mjs >/dev/null 2>&1; then
  echo "== browser journeys through the gateway"
  export E2E_ADMIN_EMAIL=admin@e2e.test
  E2E_ADMIN_PASSWORD="e2e-admin-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
  export E2E_ADMIN_PASSWORD
  printf '%s\n' "$E2E_ADMIN_PASSWORD" |
    DATABASE_URL="$pg/${prefix}_identity" "$bin" admin create --email "$E2E_ADMIN_EMAIL" --name "E2E Admin" >>"$log" 2>&1
  # Screenshots beside the embedded run's (which .ci/run makes first), not over them.
  E2E_ARTIFACTS=target/e2e/multi-topology E2E_BASE_URL="$api" bash tests/e2e/run.sh ||
    { echo "browser journeys through the gateway failed (artifacts: target/e2e/multi-topology)" >&2; exit 1; }
  # The privacy journey erased a person: no table of any context's database may still hold them.
  if [ -f target/e2e/multi-topology/erased-person.json ]; then
    urls=()
    for ctx in identity catalog inventory cart ordering payments notifications; do urls+=("$pg/${prefix}_$ctx"); done
    python3 tests/scan_personal_data.py target/e2e/multi-topology/erased-person.json --postgres "${urls[@]}"
  else
    echo "the privacy journey left no erased-person.json: it did not run" >&2
    exit 1
  fi
fi

echo "== stopping (SIGTERM, as Ctrl-C): every process must exit"
kill -TERM "$dev"
status=0
wait "$dev" || status=$?
dev=""
[ "$status" = 0 ] || { echo "emporium dev exited with $status on SIGTERM" >&2; tail -n 20 "$log" >&2; exit 1; }
left=$(left_behind $pids)
[ -z "$left" ] || { echo "processes left behind after SIGTERM:$left" >&2; exit 1; }
echo "all 8 processes stopped"

echo "== emporium dev SIGKILLed: its processes must stop by themselves"
start
pids=$(children)
{ kill -KILL "$dev" && wait "$dev"; } 2>/dev/null || true
dev=""
for _ in $(seq 1 100); do
  left=$(left_behind $pids)
  [ -z "$left" ] && break
  sleep 0.2
done
[ -z "$left" ] || { echo "orphans after SIGKILL:$left" >&2; exit 1; }
echo "no orphans"
echo "multi-process topology: OK ($((SECONDS - started)) s)"
