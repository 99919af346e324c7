#!/usr/bin/env bash
# Smoke test of a running Emporium (embedded process, the gateway of a compose stack, or an
# environment behind its Ingress): liveness and readiness, the catalog (listing, search, stock), and
# the account flow as in README's walkthrough (register -> verify -> log in -> /me -> refresh ->
# the old refresh token refused). Read-only apart from one new account when it registers.
#
#   BASE_URL        required  e.g. http://127.0.0.1:8080 or https://staging.shop.example.com
#   SMOKE_AUTH      auto|mailbox|account|none (default auto):
#                     mailbox  registers smoke-<time>@<SMOKE_EMAIL_DOMAIN> and reads the verification
#                              mail from /api/v1/dev/mailbox (embedded mode, `emporium dev`);
#                     account  logs in as SMOKE_EMAIL / SMOKE_PASSWORD, a verified account made once
#                              per environment (production mails by SMTP: no mailbox to read);
#                     none     skips the login steps (says so);
#                     auto     account when SMOKE_EMAIL is set, else mailbox when the dev mailbox
#                              answers, else fails and says how to choose.
#   SMOKE_TIMEOUT   seconds to wait for /health/live and /health/ready (default 120)
#   SMOKE_MIN_PRODUCTS  products the catalog must list at least (default 1)
#   SMOKE_EMAIL_DOMAIN  domain of registered addresses (default example.com)
#
# Exit 0: every step passed; 1: a step failed (which one, with the answer); 2: bad configuration.
set -euo pipefail
SCRIPT_NAME=smoke-test.sh
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

require BASE_URL "$RE_URL" 'http://127.0.0.1:8080'
BASE_URL=${BASE_URL%/}
optional SMOKE_AUTH auto '^(auto|mailbox|account|none)$' 'account'
optional SMOKE_TIMEOUT 120 "$RE_UINT" '120'
optional SMOKE_MIN_PRODUCTS 1 "$RE_UINT" '1'
optional SMOKE_EMAIL_DOMAIN example.com '^[A-Za-z0-9.-]+\.[A-Za-z]{2,}$' 'example.com'
if [ "$SMOKE_AUTH" = account ] || { [ "$SMOKE_AUTH" = auto ] && [ -n "${SMOKE_EMAIL-}" ]; }; then
  require SMOKE_EMAIL '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$' 'smoke@shop.example.com'
  require SMOKE_PASSWORD '^.{12,}$' "'<the smoke account password, 12+ characters>'"
fi
need_cmd curl python3

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0

step() { log "ok: $*"; passed=$((passed + 1)); }
fail() { log "FAILED: $*"; exit 1; }

# http METHOD PATH [curl args...] -> prints the status code; the body is in $work/body.
http() {
  local method=$1 path=$2
  shift 2
  curl -sS -o "$work/body" -w '%{http_code}' --max-time 20 -X "$method" "$@" "$BASE_URL$path" 2>"$work/curl.err" || { cat "$work/curl.err" > "$work/body"; echo 000; }
}
# expect STATUS METHOD PATH [curl args...] -- fails with the answer when the status differs.
expect() {
  local want=$1 got
  shift
  got=$(http "$@")
  if [ "$got" != "$want" ]; then
    fail "$1 $2 answered $got, expected $want: $(head -c 400 "$work/body" 2>/dev/null)"
  fi
}
# json EXPR -- evaluates a Python expression on the last body, bound to `d`.
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($1)" "$work/body"; }
post_json() { expect "$1" POST "$2" -H 'content-type: application/json' -d "$3" "${@:4}"; }

# 1. Liveness, then readiness (every dependency answers), within SMOKE_TIMEOUT.
deadline=$((SECONDS + SMOKE_TIMEOUT))
until [ "$(http GET /health/live)" = 200 ]; do
  [ "$SECONDS" -lt "$deadline" ] || fail "GET /health/live did not answer 200 within ${SMOKE_TIMEOUT}s at $BASE_URL"
  sleep 1
done
step "/health/live"
until [ "$(http GET /health/ready)" = 200 ]; do
  [ "$SECONDS" -lt "$deadline" ] || fail "GET /health/ready not 200 within ${SMOKE_TIMEOUT}s: $(head -c 400 "$work/body")"
  sleep 1
done
step "/health/ready"

# 2. The catalog: a listing, a search for the first product's brand, its stock level.
expect 200 GET '/api/v1/catalog/products?sort=price_asc&limit=5'
count=$(json 'len(d["items"])')
[ "$count" -ge "$SMOKE_MIN_PRODUCTS" ] || fail "the catalog lists $count products, expected at least $SMOKE_MIN_PRODUCTS"
step "catalog lists $count products"
if [ "$count" -gt 0 ]; then
  sku=$(json 'd["items"][0]["sku"]')
  brand=$(json 'd["items"][0]["brand"]')
  expect 200 GET /api/v1/catalog/search -G --data-urlencode "q=$brand" -d limit=3
  total=$(json 'd["total"]')
  [ "$total" -ge 1 ] || fail "searching for brand '$brand' found nothing"
  step "search for '$brand' finds $total"
  expect 200 GET /api/v1/inventory -G --data-urlencode "sku=$sku"
  available=$(json 'd["items"][0]["available"]')
  step "inventory answers for $sku ($available available)"
fi

# 3. Accounts. A wrong password is a clean 401, never a 5xx. A new address each run: identity
#    throttles an address after 5 failures in 15 minutes (and an IP after 20), and repeated smoke
#    tests must not trip that.
post_json 401 /api/v1/auth/login '{"email":"nobody-'"$(date +%s)-$RANDOM"'@'"$SMOKE_EMAIL_DOMAIN"'","password":"not the right password"}'
step "a wrong password is refused with 401"

mode=$SMOKE_AUTH
if [ "$mode" = auto ]; then
  if [ -n "${SMOKE_EMAIL-}" ]; then
    mode=account
  elif [ "$(http GET '/api/v1/dev/mailbox?to=probe@example.com')" = 200 ]; then
    mode=mailbox
  else
    usage_error SMOKE_AUTH "is auto, but there is no dev mailbox at $BASE_URL (production mails by SMTP) and SMOKE_EMAIL is not set." \
      "export SMOKE_EMAIL=smoke@shop.example.com SMOKE_PASSWORD=... (a verified account), or SMOKE_AUTH=none"
  fi
fi

case $mode in
  none)
    log "SMOKE_AUTH=none: the login steps are skipped"
    ;;
  mailbox)
    email="smoke-$(date +%s)-$RANDOM@$SMOKE_EMAIL_DOMAIN"
    password="smoke test password $RANDOM$RANDOM"
    body=$(python3 -c 'import json,sys; print(json.dumps({"email": sys.argv[1], "password": sys.argv[2], "name": "Smoke Test"}))' "$email" "$password")
    post_json 202 /api/v1/auth/register "$body"
    step "register $email (202)"
    for _ in $(seq 1 100); do
      expect 200 GET /api/v1/dev/mailbox -G --data-urlencode "to=$email"
      [ "$(json 'len(d)')" -gt 0 ] && break
      sleep 0.2
    done
    [ "$(json 'len(d)')" -gt 0 ] || fail "no verification mail for $email within 20 s"
    token=$(json 'd[0]["body"].split("\n\n")[2].strip()')
    post_json 204 /api/v1/auth/verify-email "{\"token\":\"$token\"}"
    step "verify the address from the mailed link"
    ;;
  account)
    email=$SMOKE_EMAIL
    password=$SMOKE_PASSWORD
    ;;
esac

if [ "$mode" != none ]; then
  body=$(python3 -c 'import json,sys; print(json.dumps({"email": sys.argv[1], "password": sys.argv[2]}))' "$email" "$password")
  post_json 200 /api/v1/auth/login "$body"
  access=$(json 'd["access_token"]')
  refresh=$(json 'd["refresh_token"]')
  step "log in as $email"
  expect 200 GET /api/v1/users/me -H "Authorization: Bearer $access"
  [ "$(json 'd["email"]')" = "$email" ] || fail "/users/me answered another user: $(head -c 200 "$work/body")"
  step "/users/me is $email"
  post_json 200 /api/v1/auth/refresh "{\"refresh_token\":\"$refresh\"}"
  step "refresh rotates the token pair"
  post_json 401 /api/v1/auth/refresh "{\"refresh_token\":\"$refresh\"}"
  step "the used refresh token is refused (401)"
fi

log "smoke test passed: $passed checks against $BASE_URL"
