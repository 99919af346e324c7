#!/usr/bin/env bash
# The error-rate SLO gate of a deployment: asks Prometheus for the share of 5xx answers of the pods
# matching POD_REGEX in NAMESPACE over SLO_WINDOW (the metric behind the HighErrorRate alert in
# observability/prometheus/rules/emporium.rules.yml) and fails when it is above ERROR_RATE_SLO.
#
#   PROMETHEUS_URL   required  e.g. http://prometheus-operated.monitoring:9090
#   NAMESPACE        required  e.g. emporium-prod
#   POD_REGEX        default   .+            (the canary: .+-canary-.+)
#   ERROR_RATE_SLO   default   0.01          (1 % of requests may fail)
#   SLO_WINDOW       default   5m
#   SLO_REQUIRE_TRAFFIC default false        (true: no requests at all fails the gate too)
#   PROMETHEUS_TOKEN optional  bearer token for Prometheus
set -euo pipefail
SCRIPT_NAME=check-error-rate.sh
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

require PROMETHEUS_URL "$RE_URL" 'http://prometheus-operated.monitoring:9090'
require NAMESPACE '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$' 'emporium-prod'
optional POD_REGEX '.+' '^[^"[:space:]]+$' "'.+-canary-.+'"
optional ERROR_RATE_SLO 0.01 '^(0(\.[0-9]+)?|1(\.0+)?)$' '0.01'
optional SLO_WINDOW 5m '^[0-9]+[smh]$' '5m'
optional SLO_REQUIRE_TRAFFIC false "$RE_BOOL" 'true'
need_cmd curl python3

sel="namespace=\"$NAMESPACE\",pod=~\"$POD_REGEX\""
query="sum(rate(http_requests_total{$sel,status=\"5xx\"}[$SLO_WINDOW])) or vector(0)"
total_query="sum(rate(http_requests_total{$sel}[$SLO_WINDOW]))"
auth=()
[ -n "${PROMETHEUS_TOKEN-}" ] && auth=(-H "Authorization: Bearer $PROMETHEUS_TOKEN")

scalar() {
  local out
  out=$(curl -sS --fail --max-time 20 "${auth[@]}" -G "${PROMETHEUS_URL%/}/api/v1/query" --data-urlencode "query=$1") \
    || die "Prometheus at $PROMETHEUS_URL did not answer the query $1"
  python3 -c '
import json, sys
d = json.loads(sys.argv[1])
if d.get("status") != "success":
    sys.exit("query failed: " + d.get("error", "?"))
r = d["data"]["result"]
print(r[0]["value"][1] if r else "none")' "$out"
}

errors=$(scalar "$query")
total=$(scalar "$total_query")
if [ "$total" = none ] || python3 -c 'import sys; sys.exit(float(sys.argv[1]) > 0)' "$total"; then
  if [ "$SLO_REQUIRE_TRAFFIC" = true ]; then
    die "no requests from pods $POD_REGEX in $NAMESPACE over $SLO_WINDOW: the SLO cannot be judged"
  fi
  log "no requests from pods $POD_REGEX in $NAMESPACE over $SLO_WINDOW: nothing to judge (SLO_REQUIRE_TRAFFIC=true makes this fail)"
  exit 0
fi
ratio=$(python3 -c 'import sys; print(f"{float(sys.argv[1]) / float(sys.argv[2]):.5f}")' "$errors" "$total")
if python3 -c 'import sys; sys.exit(float(sys.argv[1]) > float(sys.argv[2]))' "$ratio" "$ERROR_RATE_SLO"; then
  log "error rate $ratio <= SLO $ERROR_RATE_SLO (pods $POD_REGEX in $NAMESPACE, $total req/s over $SLO_WINDOW)"
else
  log "error rate $ratio > SLO $ERROR_RATE_SLO (pods $POD_REGEX in $NAMESPACE, $total req/s over $SLO_WINDOW)"
  exit 1
fi
