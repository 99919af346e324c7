# shellcheck shell=bash
# Sourced by the bench scripts, from the repository's root (each script cd's there first).

# emporium_binary: prints the absolute path of the release binary a bench runs. EMPORIUM_BIN when
# set (a binary built beforehand: an older commit, or a build with symbols); otherwise
# target/release/emporium (honouring CARGO_TARGET_DIR), built first unless BENCH_SKIP_BUILD=1.
# Use it as `bin=$(emporium_binary)`: a failed build fails the assignment.
emporium_binary() {
  if [ -n "${EMPORIUM_BIN:-}" ]; then
    realpath "$EMPORIUM_BIN"
    return
  fi
  if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    echo "building the release binary (first build takes several minutes)..." >&2
    cargo build --release --quiet --locked -p emporium >&2 || return 1
  fi
  echo "$(realpath "${CARGO_TARGET_DIR:-target}")/release/emporium"
}
