#!/usr/bin/env bash
# Installs what the browser tests (tests/e2e) need, idempotently:
#   Debian `chromium` (the browser playwright-core drives; no browser download from elsewhere),
#   playwright-core and axe-core from npm into tests/e2e/node_modules, exactly as package-lock.json
#   pins them.
# Node.js itself is the machine's (20+).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
  echo "installing chromium (Debian package)..."
  # Keep package scripts from starting services: only the browser binary is wanted.
  created_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && created_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core >/dev/null
  [ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi
/usr/bin/chromium --version 2>/dev/null || echo "chromium: version unknown"

# The machine's Node.js runs the tests (playwright-core needs 20 or newer; Debian 12's own is 18).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "the browser tests need Node.js 20+ and npm on PATH" >&2
  exit 1
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "the browser tests need Node.js 20 or newer; this is $(node --version)" >&2
  exit 1
fi
echo "node $(node --version)"

# npm ci wipes and reinstalls node_modules; skip it when the installed tree already matches the
# lock file (npm writes node_modules/.package-lock.json, a copy of what it installed).
e2e=tests/e2e
stamp="$e2e/node_modules/.installed-from-lock.sha256"
want=$(sha256sum "$e2e/package-lock.json" | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || [ ! -d "$e2e/node_modules/playwright-core" ] || [ ! -d "$e2e/node_modules/axe-core" ]; then
  echo "installing npm packages of $e2e..."
  (cd "$e2e" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > "$stamp"
fi
echo "playwright-core $(node -p "require('./$e2e/node_modules/playwright-core/package.json').version")," \
  "axe-core $(node -p "require('./$e2e/node_modules/axe-core/package.json').version")"
