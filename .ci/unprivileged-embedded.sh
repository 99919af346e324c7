#!/usr/bin/env bash
# The binary as the image runs it: an unprivileged user (65532, distroless `nonroot`), every
# filesystem read-only (like Kubernetes' readOnlyRootFilesystem) except its data directory (the
# image's /data volume), no capabilities, no new privileges, no environment beyond what it is
# given. Embedded mode must start, write its SQLite files into the data directory only, and
# answer /health/ready; `emporium healthcheck` (the image's HEALTHCHECK) must say so.
# Needs root (a private mount namespace via unshare, then setpriv drops to 65532).
# Usage: .ci/unprivileged-embedded.sh [path/to/emporium]   (default target/debug/emporium)
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${1:-target/debug/emporium}
[ -x "$bin" ] || { echo "unprivileged-embedded: $bin is not an executable; build it first (cargo build -p emporium)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "unprivileged-embedded: run as root (it drops to uid 65532 itself)" >&2; exit 1; }
for tool in unshare setpriv mount; do
  command -v "$tool" >/dev/null || { echo "unprivileged-embedded: $tool (util-linux) is missing" >&2; exit 1; }
done

uid=65532
work=$(mktemp -d)
server=""
cleanup() {
  if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then
    kill -TERM "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# The image's layout: the binary root-owned under a read-only path, /data owned by 65532, the
# working directory read-only.
mkdir -p "$work/bin" "$work/data" "$work/cwd"
install -m 0755 "$bin" "$work/bin/emporium"
chown "$uid:$uid" "$work/data"
chmod 0700 "$work/data"
chmod 0755 "$work" "$work/cwd"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"

# In a private mount namespace: bind the data directory onto itself (a mount of its own, which
# stays writable), then remount every other filesystem read-only.
# shellcheck disable=SC2016 # the script's variables are its own arguments, expanded inside
unshare --mount --propagation private -- bash -c '
  set -euo pipefail
  work=$1; uid=$2; port=$3
  mount --bind "$work/data" "$work/data"
  while read -r _ _ _ _ point _; do
    case "$point" in /proc*|/sys*|/dev*|"$work/data") continue ;; esac
    mount -o remount,bind,ro "$point" 2>/dev/null || true
  done < /proc/self/mountinfo
  if touch "$work/cwd/probe" 2>/dev/null || touch /tmp/emporium-probe-$$ 2>/dev/null; then
    echo "unprivileged-embedded: the filesystem is still writable" >&2; exit 1
  fi
  cd "$work/cwd"
  exec setpriv --reuid="$uid" --regid="$uid" --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs \
    env -i PATH=/usr/bin:/bin HOME=/nonexistent \
      EMPORIUM_DATA_DIR="$work/data" EMPORIUM_LISTEN="127.0.0.1:$port" \
      EMPORIUM_LOG_FORMAT=json RUST_LOG=warn EMPORIUM_SEED_DEMO=false \
      "$work/bin/emporium" serve
' unprivileged "$work" "$uid" "$port" >"$work/server.log" 2>&1 &
server=$!

ready=""
for _ in $(seq 1 150); do
  if "$work/bin/emporium" healthcheck --url "$url/health/ready" --timeout-ms 1000 >/dev/null 2>&1; then
    ready=yes
    break
  fi
  kill -0 "$server" 2>/dev/null || break
  sleep 0.2
done
if [ -z "$ready" ]; then
  echo "unprivileged-embedded: embedded mode as uid $uid on a read-only filesystem did not become ready; its log:" >&2
  tail -n 30 "$work/server.log" | cut -c1-400 >&2
  exit 1
fi

# It runs as 65532, and wrote only into its data directory.
owner=$(ps -o uid= -p "$(pgrep -P "$server" -n || echo "$server")" | tr -d ' ')
[ "$owner" = "$uid" ] || { echo "unprivileged-embedded: the server runs as uid $owner, not $uid" >&2; exit 1; }
ls "$work/data"/*.db >/dev/null 2>&1 || { echo "unprivileged-embedded: no SQLite files in the data directory" >&2; exit 1; }
[ -z "$(ls -A "$work/cwd")" ] || { echo "unprivileged-embedded: something was written to the working directory" >&2; exit 1; }
bad=$(find "$work/data" ! -uid "$uid" -print | sed -n 1,3p)
[ -z "$bad" ] || { echo "unprivileged-embedded: files in the data directory not owned by $uid: $bad" >&2; exit 1; }

# The image's HEALTHCHECK (no --url: the port of EMPORIUM_LISTEN) and a dead port.
EMPORIUM_LISTEN="0.0.0.0:$port" "$work/bin/emporium" healthcheck >/dev/null ||
  { echo "unprivileged-embedded: emporium healthcheck (default URL from EMPORIUM_LISTEN) failed" >&2; exit 1; }
kill -TERM "$server"
status=0
wait "$server" || status=$?
server=""
[ "$status" = 0 ] || { echo "unprivileged-embedded: exit status $status after SIGTERM" >&2; tail -n 20 "$work/server.log" >&2; exit 1; }
if "$work/bin/emporium" healthcheck --url "$url/health/ready" --timeout-ms 1000 2>/dev/null; then
  echo "unprivileged-embedded: healthcheck passed against a stopped server" >&2; exit 1
fi
echo "unprivileged embedded mode: OK (uid $uid, read-only filesystem but $work/data, /health/ready answered, clean stop)"
