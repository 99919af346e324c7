#!/usr/bin/env bash
# Checks the Grafana, logs and traces configuration under observability/ (not prometheus/ and
# alertmanager/, which have their own checks), installing what it needs first, idempotently:
#   yamllint + PyYAML   (PyPI, into target/ci-venv)   every YAML file parses and is lint-clean
#   ShellCheck          (Debian)                      this script
#   dashboards          generated JSON up to date (generate_dashboards.py --check); each parses,
#                       unique uids/titles/panel ids, every datasource provisioned, every metric
#                       exported by the code (check_dashboards.py without --prometheus)
#   structure           Loki, Promtail, Tempo, OpenTelemetry Collector, Filebeat, Logstash, the
#                       index template, Grafana's data sources, compose's mounts
#                       (.ci/check_observability_configs.py; none of these binaries can be
#                       installed from a registry here, so their own config verification does
#                       not run)
# and, live:
#   --prometheus URL    runs every dashboard query against that Prometheus (it must scrape a
#                       loaded Emporium): observability/grafana/check_dashboards.py
#   --live              starts all of that itself: the embedded binary (target/debug/emporium,
#                       built if missing) on a free port with an administrator, a Prometheus
#                       (Debian package) scraping it every 2 s with the bearer token, traffic from
#                       observability/grafana/drive_traffic.py, then the query check.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
step() { printf '\n-- %s (%ss)\n' "$1" "$((SECONDS - started))"; }
fail() { echo "check-observability-configs: $*" >&2; exit 1; }

prometheus_url=
live=0
while [ $# -gt 0 ]; do
  case $1 in
    --live) live=1 ;;
    --prometheus) [ $# -ge 2 ] || fail "--prometheus needs a URL"; prometheus_url=$2; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) fail "unknown argument $1 (--live, --prometheus URL)" ;;
  esac
  shift
done

step "tools"
venv=target/ci-venv
[ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
[ -x "$venv/bin/yamllint" ] || "$venv/bin/python" -m pip install -q --disable-pip-version-check 'yamllint==1.38.0'
"$venv/bin/python" -c 'import yaml' 2>/dev/null || "$venv/bin/python" -m pip install -q --disable-pip-version-check 'PyYAML==6.0.2'
py=$venv/bin/python
install_debian() {
  echo "installing $* (Debian)..."
  local created_policy=0
  # Package scripts must not start services (prometheus): policy-rc.d says no.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && created_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null
  if [ "$created_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
}
command -v shellcheck >/dev/null 2>&1 || install_debian shellcheck
echo "$("$venv/bin/yamllint" --version), PyYAML $("$py" -c 'import yaml; print(yaml.__version__)'), shellcheck $(shellcheck --version | sed -n 's/^version: //p')"

step "shellcheck"
shellcheck -x .ci/check-observability-configs.sh
echo "shellcheck: clean"

step "yamllint"
mapfile -t yamls < <(find observability/grafana/provisioning observability/loki observability/promtail \
  observability/tempo observability/otel-collector observability/elk -name '*.yml' -o -name '*.yaml' | sort)
# The repository's style: long comment lines are fine; no document start marker.
"$venv/bin/yamllint" --strict -d '{extends: default, rules: {line-length: {max: 160}, document-start: disable,
  truthy: {check-keys: false}, comments: {min-spaces-from-content: 1}, braces: {max-spaces-inside: 1},
  brackets: {max-spaces-inside: 1}}}' "${yamls[@]}"
echo "yamllint: ${#yamls[@]} files clean"

step "JSON and Python"
mapfile -t jsons < <(find observability/grafana/dashboards observability/elk -name '*.json' | sort)
for f in "${jsons[@]}"; do "$py" -m json.tool "$f" >/dev/null || fail "$f is not JSON"; done
"$py" -m py_compile observability/grafana/*.py .ci/check_observability_configs.py
echo "JSON: ${#jsons[@]} files parse; the Python scripts compile"

step "dashboards (static)"
"$py" observability/grafana/generate_dashboards.py --check
"$py" observability/grafana/check_dashboards.py

step "loki, promtail, tempo, otel-collector, filebeat, logstash (structure)"
"$py" .ci/check_observability_configs.py

if [ -n "$prometheus_url" ]; then
  step "dashboard queries against $prometheus_url"
  "$py" observability/grafana/check_dashboards.py --prometheus "$prometheus_url"
fi

if [ "$live" = 1 ]; then
  step "live: embedded Emporium + Prometheus"
  command -v prometheus >/dev/null 2>&1 || install_debian prometheus
  [ -x target/debug/emporium ] || cargo build -q -p emporium
  work=$(mktemp -d)
  pids=()
  cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
  }
  trap cleanup EXIT
  free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
  app_port=$(free_port)
  prom_port=$(free_port)
  token=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
  admin_password="dashboards check $(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  printf '%s\n' "$admin_password" | EMPORIUM_DATA_DIR=$work/data target/debug/emporium admin create \
    --email admin@example.com >/dev/null
  EMPORIUM_DATA_DIR=$work/data EMPORIUM_LISTEN=127.0.0.1:$app_port EMPORIUM_METRICS_TOKEN=$token \
    EMPORIUM_RESERVATION_SWEEP_SECS=2 target/debug/emporium serve >"$work/emporium.log" 2>&1 &
  pids+=($!)
  printf '%s' "$token" > "$work/token"
  cat > "$work/prometheus.yml" <<EOF
global: {scrape_interval: 2s, evaluation_interval: 2s}
scrape_configs:
  - job_name: emporium
    authorization: {credentials_file: $work/token}
    static_configs: [{targets: ["127.0.0.1:$app_port"]}]
EOF
  prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
    --web.listen-address="127.0.0.1:$prom_port" >"$work/prometheus.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 150); do
    curl -sf "http://127.0.0.1:$app_port/health/ready" >/dev/null 2>&1 && break
    sleep 0.2
  done
  curl -sf "http://127.0.0.1:$app_port/health/ready" >/dev/null || { tail -n 20 "$work/emporium.log"; fail "emporium did not start"; }
  up=
  for _ in $(seq 1 100); do
    up=$(curl -sf "http://127.0.0.1:$prom_port/api/v1/query?query=up" 2>/dev/null | "$py" -c \
      'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")' 2>/dev/null || true)
    [ "$up" = 1 ] && break
    sleep 0.2
  done
  [ "$up" = 1 ] || { tail -n 20 "$work/prometheus.log"; fail "Prometheus does not scrape emporium (up=$up)"; }
  echo "emporium on :$app_port, prometheus on :$prom_port, scraping every 2 s"
  # Two bursts a few scrapes apart, so rate() over 1m sees the counters move.
  "$py" observability/grafana/drive_traffic.py --url "http://127.0.0.1:$app_port" \
    --admin-email admin@example.com --admin-password "$admin_password" --rounds 3
  sleep 5
  "$py" observability/grafana/drive_traffic.py --url "http://127.0.0.1:$app_port" \
    --admin-email admin@example.com --admin-password "$admin_password" --rounds 2
  sleep 5
  step "dashboard queries against the live Prometheus"
  "$py" observability/grafana/check_dashboards.py --prometheus "http://127.0.0.1:$prom_port"
fi

step "done"
echo "check-observability-configs: all green in $((SECONDS - started))s"
