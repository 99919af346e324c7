#!/usr/bin/env bash
# Creates target/test-venv with the test servers' packages (tests/requirements.txt), unless it
# already imports them all. Prints the interpreter's path.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/test-venv
modules=$(grep -v '^#' tests/requirements.txt | sed -n 's/==.*//p' | paste -sd, -)
if ! "$venv/bin/python" -c "import $modules" 2>/dev/null; then
  echo "installing tests/requirements.txt into $venv..." >&2
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r tests/requirements.txt
fi
echo "$venv/bin/python"
