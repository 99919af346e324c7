#!/usr/bin/env bash
# Runs the browser tests (tests/e2e/*.test.mjs) in headless Chromium.
#
# Without E2E_BASE_URL: starts the embedded server (target/debug/emporium, built only when
# missing) on a free port with a fresh data directory and the demo catalog, creates an admin,
# runs the tests, and stops the server whatever happens.
# With E2E_BASE_URL (e.g. the gateway of `emporium dev --topology multi`): runs the tests against
# that server; E2E_ADMIN_EMAIL and E2E_ADMIN_PASSWORD must then name an existing admin.
#
# E2E_PAYMENTS=stripe (started server only): payments go through localstripe, a Stripe-compatible
# server started here on a free port (tests/localstripe_server.py), and checkout takes cards with
# its Stripe.js; tests/e2e/stripe.test.mjs runs only then (the other tests type test cards).
#
# Artifacts (screenshots, failure pages, the server log) go to target/e2e/ (or $E2E_ARTIFACTS).
# Extra arguments are passed to `node --test` (e.g. `--test-name-pattern=declined`); set
# E2E_TESTS to a space-separated list of files to run only those.
set -euo pipefail
cd "$(dirname "$0")/../.."

artifacts="${E2E_ARTIFACTS:-target/e2e}"
rm -rf "$artifacts"
mkdir -p "$artifacts"
E2E_ARTIFACTS=$(cd "$artifacts" && pwd)
export E2E_ARTIFACTS

if [ ! -d tests/e2e/node_modules/playwright-core ] || [ ! -d tests/e2e/node_modules/axe-core ] || [ ! -x /usr/bin/chromium ]; then
  bash .ci/install-e2e.sh
fi

server=""
stripe=""
data=""
cleanup() {
  for pid in "$server" "$stripe"; do
    if [ -n "$pid" ]; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  [ -n "$data" ] && rm -rf "$data"
  return 0
}
trap cleanup EXIT

# A port nobody listens on: ask the kernel for one, then let it go for the server to take.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

if [ -z "${E2E_BASE_URL:-}" ]; then
  if [ ! -x target/debug/emporium ]; then
    echo "building target/debug/emporium..."
    cargo build -p emporium --locked
  fi
  data=$(mktemp -d)
  port=$(free_port)
  export EMPORIUM_DATA_DIR="$data"
  export EMPORIUM_LISTEN="127.0.0.1:$port"
  export EMPORIUM_PUBLIC_URL="http://127.0.0.1:$port"
  # Cheap password hashing: the tests log in many times; production keeps the strong defaults.
  export EMPORIUM_ARGON2_MEMORY_KIB=8192 EMPORIUM_ARGON2_ITERATIONS=1
  # Every test signs in from 127.0.0.1; the per-address auth limit (30/min) is for the internet.
  export EMPORIUM_AUTH_RATE_PER_MINUTE=600
  export RUST_LOG="${RUST_LOG:-info}"
  export E2E_ADMIN_EMAIL=admin@e2e.test
  E2E_ADMIN_PASSWORD="e2e-admin-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
  export E2E_ADMIN_PASSWORD

  if [ "${E2E_PAYMENTS:-simulated}" = stripe ]; then
    python=$(bash tests/python-env.sh)
    coproc LOCALSTRIPE { exec "$python" tests/localstripe_server.py 2>"$artifacts/localstripe.log"; }
    stripe=$LOCALSTRIPE_PID
    read -r -t 30 ready <&"${LOCALSTRIPE[0]}" || { echo "localstripe did not start; see $artifacts/localstripe.log" >&2; exit 1; }
    stripe_base="http://127.0.0.1:${ready#ready }"
    export EMPORIUM_PAYMENTS_PROVIDER=stripe
    export EMPORIUM_PAYMENTS_STRIPE_API_BASE="$stripe_base"
    export EMPORIUM_PAYMENTS_STRIPE_JS_URL="$stripe_base/js.stripe.com/v3/"
    # localstripe takes any key with the right prefix; these are test values, not secrets.
    export EMPORIUM_PAYMENTS_STRIPE_SECRET_KEY=sk_test_emporium_e2e
    export EMPORIUM_PAYMENTS_STRIPE_PUBLISHABLE_KEY=pk_test_emporium_e2e
    export EMPORIUM_PAYMENTS_STRIPE_WEBHOOK_SECRET=whsec_emporium_e2e_test
    export E2E_STRIPE_BASE="$stripe_base"
    curl -fsS -o /dev/null -X POST "$stripe_base/_config/webhooks/emporium" \
      --data-urlencode "url=http://127.0.0.1:$port/api/v1/payments/webhooks/stripe" \
      --data-urlencode "secret=$EMPORIUM_PAYMENTS_STRIPE_WEBHOOK_SECRET"
    echo "payments through localstripe at $stripe_base"
  fi

  # The admin is created in the identity database before the server opens it.
  printf '%s\n' "$E2E_ADMIN_PASSWORD" |
    target/debug/emporium admin create --email "$E2E_ADMIN_EMAIL" --name "E2E Admin" >"$artifacts/admin-create.log" 2>&1 ||
    { cat "$artifacts/admin-create.log" >&2; exit 1; }

  target/debug/emporium serve >"$artifacts/server.log" 2>&1 &
  server=$!
  export E2E_BASE_URL="http://127.0.0.1:$port"
  ready=0
  for _ in $(seq 1 300); do
    if curl -fs -o /dev/null "$E2E_BASE_URL/health/ready"; then ready=1; break; fi
    kill -0 "$server" 2>/dev/null || break
    sleep 0.1
  done
  if [ "$ready" != 1 ]; then
    echo "the server did not become ready; tail of $artifacts/server.log:" >&2
    tail -n 40 "$artifacts/server.log" >&2
    exit 1
  fi
  echo "server ready on $E2E_BASE_URL (data in $data)"
else
  : "${E2E_ADMIN_PASSWORD:?E2E_ADMIN_PASSWORD must name the password of an admin of $E2E_BASE_URL}"
  export E2E_ADMIN_EMAIL="${E2E_ADMIN_EMAIL:-admin@e2e.test}"
  echo "testing the server at $E2E_BASE_URL"
fi

if [ -n "${E2E_TESTS:-}" ]; then
  read -r -a files <<<"$E2E_TESTS"
else
  files=(tests/e2e/*.test.mjs)
fi

started=$SECONDS
status=0
node --test --test-concurrency=1 --test-reporter=spec "$@" "${files[@]}" || status=$?
echo "browser tests took $((SECONDS - started)) s; screenshots in $artifacts/"

# The privacy test erased a person: no table of any context's database may still hold them.
if [ "$status" = 0 ] && [ -n "$server" ] && [ -f "$artifacts/erased-person.json" ]; then
  python3 tests/scan_personal_data.py "$artifacts/erased-person.json" --sqlite "$data" || status=1
fi

if [ "$status" != 0 ] && [ -n "$server" ]; then
  # The log is JSON with span context on every line: show the warnings and errors, then the
  # last requests, each cut to a readable length.
  echo "--- warnings and errors in $artifacts/server.log (last 20) ---" >&2
  grep -E '"level":"(WARN|ERROR)"' "$artifacts/server.log" | tail -n 20 | cut -c1-600 >&2 || true
  echo "--- tail of $artifacts/server.log ---" >&2
  tail -n 25 "$artifacts/server.log" | cut -c1-300 >&2
  if [ -n "$stripe" ]; then
    echo "--- tail of $artifacts/localstripe.log ---" >&2
    tail -n 15 "$artifacts/localstripe.log" | cut -c1-300 >&2
  fi
fi
exit "$status"
