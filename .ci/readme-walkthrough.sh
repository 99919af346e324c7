#!/usr/bin/env bash
# Runs the README's curl walkthrough verbatim against a freshly started embedded server, so the
# documentation cannot rot. Uses the binary built by the test step.
set -euo pipefail
cd "$(dirname "$0")/.."
script=$(mktemp)
data=$(mktemp -d)
awk '/<!-- walkthrough:start -->/{on=1; next} /<!-- walkthrough:end -->/{on=0} on && !/^```/' README.md > "$script"
[ -s "$script" ] || { echo "no walkthrough block found in README.md" >&2; exit 1; }

if curl -s -o /dev/null http://127.0.0.1:8080/health/live; then
  echo "something already listens on 127.0.0.1:8080; stop it to run the walkthrough check" >&2
  exit 1
fi
cargo build --quiet --locked -p emporium
EMPORIUM_DATA_DIR="$data" RUST_LOG=warn target/debug/emporium serve >"$data/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$data" "$script"' EXIT
for _ in $(seq 1 100); do curl -fs http://127.0.0.1:8080/health/live >/dev/null && break; sleep 0.1; done

# A failing step shows the commands it ran (with their variables) and the server's warnings.
if ! out=$(BASH_XTRACEFD=3 bash -x -euo pipefail "$script" 3>"$data/trace"); then
  echo "$out"
  echo "walkthrough failed; its last commands:" >&2
  tail -n 12 "$data/trace" | cut -c1-400 >&2
  echo "the server's log:" >&2
  tail -n 30 "$data/server.log" | cut -c1-600 >&2
  exit 1
fi
echo "$out"
grep -q '"email":"ada@example.com"' <<<"$out" || { echo "walkthrough: /me did not answer" >&2; exit 1; }
[ "$(tail -n1 <<<"$out")" = "401" ] || { echo "walkthrough: reused refresh token was not refused" >&2; exit 1; }
echo "README walkthrough: OK"
