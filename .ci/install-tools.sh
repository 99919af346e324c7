#!/usr/bin/env bash
# Installs what CI's checks need beyond the Rust toolchain, idempotently:
#   promtool (Debian `prometheus`) for `promtool check metrics`,
#   pdftotext (Debian `poppler-utils`) for the invoice PDF tests,
#   openapi-spec-validator (PyPI) in target/ci-venv for the OpenAPI 3.1 document.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null 2>&1; then
  echo "installing promtool (Debian package prometheus)..."
  # Keep the package's service from starting: we only want the promtool binary.
  created_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && created_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends prometheus >/dev/null
  [ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  pkill -x prometheus 2>/dev/null || true
fi
promtool --version 2>&1 | sed -n 1p

# pdftotext (Debian poppler-utils): the invoice tests read the text back out of the PDF.
if ! command -v pdftotext >/dev/null 2>&1; then
  echo "installing pdftotext (Debian package poppler-utils)..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends poppler-utils >/dev/null
fi
pdftotext -v 2>&1 | sed -n 1p

venv=target/ci-venv
if [ ! -x "$venv/bin/openapi-spec-validator" ]; then
  echo "installing openapi-spec-validator into $venv..."
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check 'openapi-spec-validator==0.9.0'
fi
"$venv/bin/openapi-spec-validator" --version 2>/dev/null || true

# The test servers: the SMTP server the production-shaped tests deliver to (tests/smtp_sink.py)
# and localstripe, the Stripe-compatible server of the Stripe adapter's tests
# (tests/localstripe_server.py), pinned in tests/requirements.txt. The test harness
# (crates/test-support/src/python.rs) creates the same venv on first use; doing it here keeps the
# install out of the test timings.
bash tests/python-env.sh >/dev/null
