#!/usr/bin/env bash
# Prometheus and Alertmanager, checked by their own tools and then run for real against the
# multi-process topology:
#   1. promtool check config / check rules / test rules; amtool check-config, the route of each
#      severity (critical -> PagerDuty, warning -> Slack, business -> e-mail), the templates
#      rendered; every alert has its runbook and every runbook names an alert (docs/runbooks);
#   2. `emporium dev --topology multi` (like .ci/multi-topology.sh, on its own databases, namespace
#      and ports), a real Prometheus and Alertmanager from Debian's packages with configurations
#      derived from the repository's (targets mapped to the local processes, 2 s scrapes and rule
#      evaluation, every receiver pointed at a webhook this script runs), a short load;
#   3. every target is up and the RED recording rules have data; the dashboards' queries run
#      against this Prometheus when observability/grafana/check_dashboards.py exists;
#   4. synthetic alerts posted to Alertmanager reach the Slack and e-mail receivers by severity, and
#      InstanceDown inhibits the other alerts of its instance;
#   5. one context process stops (SIGSTOP: it keeps its port but answers nothing, exactly what a
#      hung process looks like; a killed one would be restarted by `emporium dev` within 0.5 s),
#      InstanceDown fires and reaches the webhook as the PagerDuty receiver; the process continues
#      (SIGCONT), its target is up again and the resolved notification arrives.
# The live copy of the rules shortens InstanceDown's `for: 2m` to 10 s (check_observability.py's
# LIVE_FOR_OVERRIDES, printed below); everything else is the repository's rules as they are.
#   6. the payment fault-injection flag at 100 % (set through the gateway as an administrator):
#      checkouts with the good card are declined, the failure ratio climbs, PaymentFailureRate
#      fires and reaches the Slack receiver; the flag is cleared afterwards (and on any exit).
# PaymentFailureRate's `for: 10m` is shortened to 10 s the same way.
# Tools are installed when missing (Debian prometheus, prometheus-alertmanager; PyYAML in
# target/ci-venv); nothing installed by hand is relied on. Everything started is stopped, the
# databases dropped, the namespace's Redis keys and RabbitMQ queues and exchange removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
step() { printf '== %s (%ss)\n' "$1" "$((SECONDS - started))"; }

# ---- tools ----------------------------------------------------------------------------------------
install_debian() { # package...
  echo "installing Debian packages: $*"
  # Keep the packages' services from starting: the check runs its own servers.
  local created_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && created_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "$@" >/dev/null
  if [ "$created_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
}
missing=()
{ command -v promtool && command -v prometheus; } >/dev/null 2>&1 || missing+=(prometheus)
{ command -v amtool && command -v prometheus-alertmanager; } >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
if [ "${#missing[@]}" -gt 0 ]; then install_debian "${missing[@]}"; fi
venv=target/ci-venv
if [ ! -x "$venv/bin/python" ]; then python3 -m venv "$venv"; fi
if ! "$venv/bin/python" -c 'import yaml' 2>/dev/null; then
  # Other checks install into the same venv: one pip at a time.
  flock "$venv/.install.lock" "$venv/bin/python" -m pip install -q --disable-pip-version-check "PyYAML>=6,<7"
fi
py="$venv/bin/python"
helper=.ci/check_observability.py
echo "$(prometheus --version 2>&1 | sed -n 1p); $(prometheus-alertmanager --version 2>&1 | sed -n 1p)"

# ---- 1. static checks -------------------------------------------------------------------------------
step "promtool: config, rules, unit tests"
# The compose file's token file and rule directory exist only in the container: syntax here, the
# full check (files included) on the derived configuration below.
promtool check config --syntax-only observability/prometheus/prometheus.yml
promtool check rules observability/prometheus/rules/*.yml
promtool test rules observability/prometheus/tests/*.yml

step "amtool: config, routes per severity, templates"
am_conf=observability/alertmanager/alertmanager.yml
amtool check-config "$am_conf"
for route in critical=pagerduty-critical warning=slack-warnings business=email-business; do
  severity=${route%%=*} receiver=${route#*=}
  amtool config routes test --config.file="$am_conf" --verify.receivers="$receiver" \
    severity="$severity" alertname=Example job=emporium-catalog 2>/dev/null >/dev/null ||
    { echo "severity=$severity is not routed to $receiver:" >&2; amtool config routes test --config.file="$am_conf" severity="$severity" >&2; exit 1; }
  echo "severity=$severity -> $receiver"
done
amtool template render --template.glob='observability/alertmanager/templates/*.tmpl' \
  --template.text='{{ template "emporium.title" . }}{{ template "emporium.text" . }}{{ template "emporium.email.html" . }}' >/dev/null
echo "templates render"

step "runbooks"
"$py" "$helper" runbooks

step "shellcheck"
shellcheck .ci/check-observability.sh

# ---- 2. the live system --------------------------------------------------------------------------------
bin=target/debug/emporium
[ -x "$bin" ] || cargo build --quiet --locked -p emporium
out=target/ci/check-observability
rm -rf "$out"
mkdir -p "$out"
work=$(mktemp -d)
chmod 700 "$work"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
gw_port=$(free_port)
prom_port=$(free_port)
am_port=$(free_port)
hook_port=$(free_port)
api=http://127.0.0.1:$gw_port
prom=http://127.0.0.1:$prom_port

pg=${DEV_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}
prefix="ci_obs_$$"
export DEV_POSTGRES_URL="$pg" DEV_DATABASE_PREFIX="$prefix"
export EMPORIUM_NAMESPACE="ci-obs-$$" EMPORIUM_QUEUE_EXPIRY_SECS=300
export EMPORIUM_ARGON2_MEMORY_KIB=8192 EMPORIUM_ARGON2_ITERATIONS=1 EMPORIUM_AUTH_RATE_PER_MINUTE=600
export RUST_LOG="${RUST_LOG:-info}" EMPORIUM_LOG_FORMAT=json
EMPORIUM_METRICS_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
export EMPORIUM_METRICS_TOKEN
(umask 077 && printf %s "$EMPORIUM_METRICS_TOKEN" >"$work/metrics_token")

dev="" prom_pid="" am_pid="" hook_pid="" load_pid="" stopped="" faults_token=""
# Turns every fault flag off again (they live in Redis: another run in this namespace would
# inherit them).
clear_faults() {
  curl -fs -o /dev/null -X PUT "$api/api/v1/admin/faults" -H "Authorization: Bearer $faults_token" \
    -H 'content-type: application/json' -d '{}'
}
cleanup() {
  set +e
  if [ -n "$faults_token" ]; then clear_faults; fi
  # A stopped process must run again to act on SIGTERM.
  if [ -n "$stopped" ]; then kill -CONT "$stopped" 2>/dev/null; fi
  for pid in $load_pid $prom_pid $am_pid $hook_pid; do
    kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  if [ -n "$dev" ] && kill -0 "$dev" 2>/dev/null; then
    kill -TERM "$dev" 2>/dev/null
    wait "$dev" 2>/dev/null
  fi
  for ctx in identity catalog inventory cart ordering payments notifications; do
    psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS ${prefix}_$ctx WITH (FORCE)" >/dev/null 2>&1
  done
  # The namespace's Redis keys (some hold spaces, so not through xargs), its RabbitMQ queues and
  # exchange (queues would also expire after EMPORIUM_QUEUE_EXPIRY_SECS; the exchange would not).
  if command -v redis-cli >/dev/null; then
    redis-cli EVAL "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end" 0 "$EMPORIUM_NAMESPACE:*" >/dev/null 2>&1
  fi
  if command -v rabbitmqctl >/dev/null; then
    # shellcheck disable=SC2016 # Erlang, not shell
    rabbitmqctl eval '
      P = <<"'"$EMPORIUM_NAMESPACE"'.">>, L = byte_size(P), V = <<"/">>,
      Mine = fun(N) -> binary:longest_common_prefix([N, P]) =:= L end,
      [rabbit_amqqueue:delete(Q, false, false, <<"ci">>) || Q <- rabbit_amqqueue:list(V),
        begin {resource, _, queue, N} = amqqueue:get_name(Q), Mine(N) end],
      [rabbit_exchange:delete(R, false, <<"ci">>) || E <- rabbit_exchange:list(V),
        begin R = element(2, E), {resource, _, exchange, X} = R, Mine(X) end],
      ok.' >/dev/null 2>&1
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "multi-process topology on $api"
log=$out/dev.log
"$bin" dev --topology multi --listen "127.0.0.1:$gw_port" >"$log" 2>&1 &
dev=$!
ready=0
for _ in $(seq 1 900); do
  if curl -fs -o /dev/null "$api/health/ready"; then ready=1; break; fi
  kill -0 "$dev" 2>/dev/null || break
  sleep 0.2
done
if [ "$ready" != 1 ]; then
  echo "the multi-process topology did not become ready; tail of $log:" >&2
  tail -n 40 "$log" | cut -c1-400 >&2
  exit 1
fi
# "dev: started catalog (pid 123) on http://127.0.0.1:18082"
started_lines=$(grep -o 'dev: started [a-z]* (pid [0-9]*) on http://[0-9.:]*' "$log")
targets=$(sed -E 's/dev: started ([a-z]+) \(pid ([0-9]+)\) on http:\/\/(.*)/"\1": "\3"/' <<<"$started_lines" | paste -sd, -)
targets="{$targets}"
pid_of() { sed -nE "s/dev: started $1 \(pid ([0-9]+)\).*/\1/p" <<<"$started_lines" | tail -n1; }
echo "ready in $((SECONDS - started)) s: $targets"

step "Prometheus :$prom_port and Alertmanager :$am_port (webhook :$hook_port)"
"$py" "$helper" derive --work "$work" --targets "$targets" --prometheus-port "$prom_port" \
  --alertmanager-port "$am_port" --webhook-port "$hook_port" --token-file "$work/metrics_token"
promtool check config "$work/prometheus.yml"
amtool check-config "$work/alertmanager.yml" >/dev/null
cp "$work/prometheus.yml" "$work/alertmanager.yml" "$out/"
"$py" "$helper" webhook --port "$hook_port" --out "$out/webhook.jsonl" &
hook_pid=$!
prometheus-alertmanager --config.file="$work/alertmanager.yml" --storage.path="$work/alertmanager" \
  --web.listen-address="127.0.0.1:$am_port" --cluster.listen-address= >"$out/alertmanager.log" 2>&1 &
am_pid=$!
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prometheus" \
  --web.listen-address="127.0.0.1:$prom_port" --storage.tsdb.retention.time=1h >"$out/prometheus.log" 2>&1 &
prom_pid=$!
for url in "$prom/-/ready" "http://127.0.0.1:$am_port/-/ready"; do
  for _ in $(seq 1 100); do curl -fs -o /dev/null "$url" && break; sleep 0.2; done
  curl -fs -o /dev/null "$url" || { echo "$url is not ready (logs in $out)" >&2; tail -n 20 "$out"/*.log >&2; exit 1; }
done
rules=$(curl -fs "$prom/api/v1/rules" | python3 -c 'import json,sys; g=json.load(sys.stdin)["data"]["groups"]; print(sum(len(x["rules"]) for x in g))')
echo "Prometheus loaded $rules rules"

step "load"
load() {
  local end=$((SECONDS + $1))
  while [ "$SECONDS" -lt "$end" ]; do
    for path in / /api/v1/catalog/products /api/v1/catalog/categories "/api/v1/catalog/products?q=shirt" \
      /api/v1/inventory/low-stock /api/v1/nope /health/ready; do
      curl -s -o /dev/null "$api$path" || true
    done
  done
}
load 600 &
load_pid=$!
if [ -f observability/grafana/drive_traffic.py ]; then
  # Checkouts, payments (one declined), registrations: business figures for the dashboards. Two
  # passes a few scrapes apart: a counter is born at its first increment, and `increase()` needs
  # a scrape of it before the next one to see any.
  for pass in 1 2; do
    python3 observability/grafana/drive_traffic.py --url "$api" --rounds 1 >>"$out/drive_traffic.log" 2>&1 ||
      { echo "drive_traffic.py failed:" >&2; tail -n 20 "$out/drive_traffic.log" >&2; exit 1; }
    [ "$pass" = 2 ] || sleep 5
  done
  grep -v '^ ' "$out/drive_traffic.log" | tail -n 2
else
  sleep 10
fi

step "every target up, recording rules with data"
jobs=$(python3 -c 'import json,sys; print(",".join(["emporium-" + p for p in json.loads(sys.argv[1])] + ["prometheus", "alertmanager"]))' "$targets")
"$py" "$helper" wait-up --prometheus "$prom" --jobs "$jobs" --timeout 30
for expr in 'emporium:http_requests:rate5m{job="emporium-gateway"}' 'emporium:http_requests:rate5m{job="emporium-catalog"}' \
  'emporium:http_request_duration_seconds:p95_5m{job="emporium-catalog"}' 'emporium:slo_availability_errors:ratio_rate5m' \
  'emporium:cache_hit_ratio:rate5m'; do
  for _ in $(seq 1 15); do "$py" "$helper" query --prometheus "$prom" --expr "$expr" >/dev/null 2>&1 && break; sleep 1; done
  "$py" "$helper" query --prometheus "$prom" --expr "$expr"
done

# The pool and broker metrics (db_pool_*, events_broker_connected) are newer than the other
# figures: the rules over them are asserted on live data when the binary exports them.
catalog_addr=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["catalog"])' "$targets")
catalog_metrics=$(curl -fs -H "Authorization: Bearer $EMPORIUM_METRICS_TOKEN" "http://$catalog_addr/metrics")
for check in 'db_pool_max_connections|emporium:db_pool_utilisation:ratio' \
  'events_broker_connected|min by (job, context) (events_broker_connected) == 1'; do
  metric=${check%%|*} expr=${check#*|}
  if grep -q "^$metric" <<<"$catalog_metrics"; then
    for _ in $(seq 1 10); do "$py" "$helper" query --prometheus "$prom" --expr "$expr" >/dev/null 2>&1 && break; sleep 1; done
    "$py" "$helper" query --prometheus "$prom" --expr "$expr"
  else
    echo "SKIP $expr: this binary exports no $metric"
  fi
done
# The healthy system under load pages nobody for a broken part. Not asserted: business alerts
# (the load declines cards on purpose: PaymentFailureRate) and the SLO burn rates, which a few
# dozen requests of a debug build can trip (four checkouts, one over 500 ms, is a 25% "burn").
"$py" "$helper" query --prometheus "$prom" --expect-empty \
  --expr 'ALERTS{severity="critical", alertname!~"AvailabilityBudgetBurn|LatencyBudgetBurn"}'

# The dashboards' check (observability/grafana) runs here while Prometheus has the load's data; a
# failure is reported at the end, after the alerting part has run too.
dashboards=skipped
if [ -f observability/grafana/check_dashboards.py ]; then
  step "dashboards: every panel's query against this Prometheus"
  if python3 observability/grafana/check_dashboards.py --prometheus "$prom"; then dashboards=ok; else dashboards=failed; fi
fi

step "payment failure flag at 100 %: PaymentFailureRate fires and reaches the Slack receiver"
admin_email=faults-admin@ci.test
admin_password="ci-faults-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
printf '%s\n' "$admin_password" |
  DATABASE_URL="$pg/${prefix}_identity" "$bin" admin create --email "$admin_email" --name "Faults Admin" >>"$out/faults.log" 2>&1
faults_token=$(curl -fs "$api/api/v1/auth/login" -H 'content-type: application/json' \
  -d "{\"email\":\"$admin_email\",\"password\":\"$admin_password\"}" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
ratio='sum(rate(payments_total{outcome=~"failed|declined"}[10m])) / sum(rate(payments_total[10m]))'
echo "failure ratio before: $("$py" "$helper" query --prometheus "$prom" --expr "$ratio" 2>&1 | tail -n 1)"
curl -fs "$api/api/v1/admin/faults" -X PUT -H "Authorization: Bearer $faults_token" \
  -H 'content-type: application/json' -d '{"payment_failure_percent": 100}' | tee -a "$out/faults.log"
echo
# Every process reads the flag from Redis within about a second.
sleep 2
for pass in 1 2; do
  # The good card is declined now: the script's own success check fails, as it should.
  python3 observability/grafana/drive_traffic.py --url "$api" --rounds 2 >>"$out/faults.log" 2>&1 || true
  [ "$pass" = 2 ] || sleep 5
done
grep -q '^traffic: 0 orders confirmed' "$out/faults.log" ||
  { echo "checkouts with the good card still went through with payment_failure_percent=100:" >&2; tail -n 5 "$out/faults.log" >&2; exit 1; }
for _ in $(seq 1 20); do "$py" "$helper" query --prometheus "$prom" --expr "($ratio) > 0.6" >/dev/null 2>&1 && break; sleep 1; done
"$py" "$helper" query --prometheus "$prom" --expr "($ratio) > 0.6"
"$py" "$helper" wait-alert --prometheus "$prom" --alert PaymentFailureRate --job "" --timeout 60
"$py" "$helper" wait-webhook --file "$out/webhook.jsonl" --receiver slack-warnings \
  --alert PaymentFailureRate --job "" --status firing --timeout 60
clear_faults
faults_token=""
echo "payment failure flag cleared"

step "Alertmanager: each severity to its receiver, InstanceDown's inhibition"
"$py" "$helper" am-probe --alertmanager "http://127.0.0.1:$am_port" --file "$out/webhook.jsonl"

victim=catalog
step "stopping $victim: InstanceDown fires and reaches the PagerDuty receiver"
stopped=$(pid_of "$victim")
[ -n "$stopped" ] || { echo "no pid for $victim in $log" >&2; exit 1; }
kill -STOP "$stopped"
"$py" "$helper" wait-alert --prometheus "$prom" --alert InstanceDown --job "emporium-$victim" --timeout 60
"$py" "$helper" wait-webhook --file "$out/webhook.jsonl" --receiver pagerduty-critical \
  --alert InstanceDown --job "emporium-$victim" --status firing --timeout 30

step "$victim continues: up again, InstanceDown resolved"
kill -CONT "$stopped"
stopped=""
"$py" "$helper" wait-up --prometheus "$prom" --jobs "$jobs" --timeout 30
"$py" "$helper" wait-alert --prometheus "$prom" --alert InstanceDown --job "emporium-$victim" --state none --timeout 30
"$py" "$helper" wait-webhook --file "$out/webhook.jsonl" --receiver pagerduty-critical \
  --alert InstanceDown --job "emporium-$victim" --status resolved --timeout 60
curl -fs -o /dev/null "$api/health/ready" || { echo "the gateway is not ready again after $victim continued" >&2; exit 1; }

if [ "$dashboards" = failed ]; then
  echo "observability/grafana/check_dashboards.py failed against the live Prometheus (above)" >&2
  exit 1
fi
echo "Prometheus and Alertmanager against the running system: OK ($((SECONDS - started)) s; dashboards: $dashboards; logs in $out)"
