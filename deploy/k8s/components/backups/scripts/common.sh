# shellcheck shell=bash
# Shared by the scripts in scripts/: argument checks that say which variable is wrong and how to
# set it, and small helpers. Sourced, never run.

log() { printf '%s %s\n' "[$(date -u +%H:%M:%S)] ${SCRIPT_NAME:-script}:" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# usage_error VAR "what is wrong" "how to set it" -- exit 2, the convention for configuration errors.
usage_error() {
  printf '%s: %s %s\n  set it like: %s\n' "${SCRIPT_NAME:-script}" "$1" "$2" "$3" >&2
  exit 2
}

# require VAR REGEX "example"   -- VAR must be set, non-empty and match the extended REGEX.
require() {
  local name=$1 regex=$2 example=$3 value
  value=${!name-}
  if [ -z "$value" ]; then
    usage_error "$name" "is not set." "export $name=$example"
  fi
  if ! [[ $value =~ $regex ]]; then
    usage_error "$name" "is malformed: '$value' does not match $regex." "export $name=$example"
  fi
}

# optional VAR DEFAULT REGEX "example" -- sets VAR to DEFAULT when unset/empty, then checks it
# (an empty DEFAULT leaves an unset VAR empty).
optional() {
  local name=$1 default=$2
  if [ -z "${!name-}" ]; then
    printf -v "$name" '%s' "$default"
    export "${name?}"
  fi
  [ -z "${!name}" ] && [ -z "$default" ] && return 0
  require "$name" "$3" "$4"
}

need_cmd() {
  local cmd
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' is not installed or not on PATH"
  done
}

# yaml_python -- prints a python3 that has PyYAML (PYTHON, python3, /usr/bin/python3), or fails
# saying how to get one. Use: PY=$(yaml_python) || exit 1
yaml_python() {
  local p
  for p in "${PYTHON:-}" python3 /usr/bin/python3; do
    if [ -n "$p" ] && command -v "$p" >/dev/null 2>&1 && "$p" -c 'import yaml' 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  log "error: PyYAML is needed to split the manifests: pip install pyyaml, or apt-get install python3-yaml (or set PYTHON to a python3 that has it)"
  return 1
}

# Regexes used by several scripts.
RE_ENVIRONMENT='^(dev|staging|prod)$'
RE_UINT='^[0-9]+$'
RE_BOOL='^(true|false)$'
RE_URL='^https?://[][A-Za-z0-9._~:@-]+(/[^[:space:]]*)?$'
# An image reference: registry/repository with a tag or a sha256 digest.
RE_IMAGE='^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._/-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[a-f0-9]{64})$'
RE_IMAGE_DIGEST='^[^@[:space:]]+@sha256:[a-f0-9]{64}$'
RE_KUBE_CONTEXT='^[A-Za-z0-9@:/._-]*$'
