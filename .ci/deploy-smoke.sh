#!/usr/bin/env bash
# The Kubernetes manifests must start the real system. Renders the prod overlay
# (deploy/k8s/overlays/prod) and, with deploy/k8s/tools/smoke.py:
#   1. runs every Job (the migrations) with the command, args and environment the manifests give
#      it, against this run's databases on the local PostgreSQL (postgres@127.0.0.1:5432);
#   2. starts every Deployment's container command as a local process with its environment
#      (ConfigMaps and Secrets resolved; the ExternalSecret-backed keys get test values: the local
#      PostgreSQL, Redis 6379, RabbitMQ 5672 guest/guest, an SMTP sink, random secrets), Service
#      host names mapped to 127.0.0.1 and a port of its own;
#   3. waits on each readinessProbe path (startup and liveness paths must answer too);
#   4. an administrator adds a product and stock through the gateway, then the README
#      walkthrough runs through the gateway (mail read back from the SMTP sink);
#   5. runs the backup CronJob's Job template once, while the system serves: its containers'
#      commands (scripts/backup-postgres.sh from the generated ConfigMap) with their environment,
#      the dump into the emptyDir from this run's databases, the upload into a stand-in S3 (an
#      `aws` stub; RDS host and IAM login stood in for by the local PostgreSQL), and checks the
#      backup is complete at the bucket URL the overlay gives;
#   6. SIGTERM: every process must exit 0 within its terminationGracePeriodSeconds.
# Then it breaks the rendering on purpose, one way at a time (a misspelt variable, a Service port
# and a listen port that do not match, a URL naming no Service, a probe path that does not exist,
# a missing migration Job, a missing Secret key, a backup setting the CronJob reads missing), and
# each run must fail for that reason
# (DEPLOY_SMOKE_MUTATIONS=0 skips this part).
# Every run has its own databases (ci_k8s_<pid>_<n>_<context>) and namespace, dropped at the end;
# no process outlives the script.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=target/debug/emporium
[ -x "$bin" ] || cargo build --quiet --locked -p emporium
command -v kubectl >/dev/null || { echo "kubectl is needed for 'kubectl kustomize'" >&2; exit 1; }
command -v psql >/dev/null || { echo "psql is needed (it creates and drops the run's databases)" >&2; exit 1; }
psql -q postgres://postgres@127.0.0.1:5432/postgres -c 'SELECT 1' >/dev/null ||
  { echo "PostgreSQL is not reachable as postgres@127.0.0.1:5432" >&2; exit 1; }

venv=target/ci-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import yaml, aiosmtpd' 2>/dev/null; then
  echo "installing PyYAML and aiosmtpd into $venv..."
  # Other checks install into the same venv: one pip at a time.
  flock "$venv/.install.lock" "$venv/bin/python" -m pip install -q --disable-pip-version-check "PyYAML>=6,<7" 'aiosmtpd==1.4.6'
fi

work=$(mktemp -d)
sink=""
smoke=""
cleanup() {
  if [ -n "$smoke" ] && kill -0 "$smoke" 2>/dev/null; then
    kill -TERM "$smoke" 2>/dev/null || true
    wait "$smoke" 2>/dev/null || true
  fi
  if [ -n "$sink" ] && kill -0 "$sink" 2>/dev/null; then
    kill -TERM "$sink" 2>/dev/null || true
    wait "$sink" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

started=$SECONDS
kubectl kustomize deploy/k8s/overlays/prod >"$work/prod.yaml"

# The SMTP relay production sends through (EMPORIUM_SMTP_URL), one JSON file per message.
mkdir -p "$work/mail"
"$venv/bin/python" tests/smtp_sink.py "$work/mail" 0 >"$work/sink.out" 2>&1 &
sink=$!
for _ in $(seq 1 100); do
  grep -q '^ready ' "$work/sink.out" 2>/dev/null && break
  kill -0 "$sink" 2>/dev/null || { cat "$work/sink.out" >&2; exit 1; }
  sleep 0.1
done
smtp_port=$(awk '/^ready /{print $2}' "$work/sink.out")
[ -n "$smtp_port" ] || { echo "the SMTP sink did not start" >&2; exit 1; }

# run <n> [--mutation NAME]: one smoke run with its own databases and log directory.
run() {
  local n=$1
  shift
  mkdir -p "$work/run$n"
  rm -f "$work"/mail/*.json
  "$venv/bin/python" deploy/k8s/tools/smoke.py "$work/prod.yaml" --bin "$bin" --prefix "ci_k8s_$$_$n" \
    --smtp-port "$smtp_port" --maildir "$work/mail" --workdir "$work/run$n" --readme README.md "$@" &
  smoke=$!
  local status=0
  wait "$smoke" || status=$?
  smoke=""
  return "$status"
}

echo "== prod overlay as local processes, README walkthrough through the gateway"
if ! run 0 >"$work/run0.out" 2>&1; then
  cat "$work/run0.out" >&2
  rm -rf target/ci/deploy-smoke
  mkdir -p target/ci/deploy-smoke
  cp -r "$work/run0/." target/ci/deploy-smoke/
  echo "deploy smoke failed; the processes' logs are in target/ci/deploy-smoke" >&2
  exit 1
fi
cat "$work/run0.out"

if [ "${DEPLOY_SMOKE_MUTATIONS:-1}" != 0 ]; then
  echo "== broken on purpose: each must fail, for its reason"
  n=1
  for mutation in variable-name service-port listen-port service-name probe-path missing-migration missing-secret \
    backup-setting; do
    # smoke.py --mutation succeeds only when the run fails for the mutation's reason.
    if ! run "$n" --mutation "$mutation" >"$work/mut$n.out" 2>&1; then
      cat "$work/mut$n.out" >&2
      exit 1
    fi
    echo "$mutation: $(grep -m1 '^deploy smoke: ' "$work/mut$n.out" | cut -c1-200)"
    n=$((n + 1))
  done
fi
echo "deploy smoke (Kubernetes prod overlay): OK ($((SECONDS - started)) s)"
