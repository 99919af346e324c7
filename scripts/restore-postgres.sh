#!/usr/bin/env bash
# Restores a backup made by backup-postgres.sh into fresh databases, <TARGET_DATABASE_PREFIX><context>.
#
# All or nothing: the manifest's checksums are verified first, every context is restored into a
# scratch database (<target>__restoring), and only when all of them succeeded are the scratch
# databases renamed to their targets. An existing target is never overwritten: point the
# application at the restored databases (DATABASE_URL per context), or drop the old ones yourself.
# Re-running after a success does nothing (each target carries the backup id in its comment).
#
#   BACKUP_SOURCE           required  /var/backups/emporium/20261203T051500Z  or  s3://bucket/postgres/<id>
#   TARGET_DATABASE_PREFIX  required  e.g. emporium_restored_ (must differ from the live prefix)
#   CONTEXTS                default   every context in the MANIFEST
#   MAINTENANCE_DB          default   postgres (where CREATE/ALTER DATABASE run)
#   PGHOST PGPORT PGUSER PGPASSWORD / PGPASSFILE / PGSSLMODE: the usual libpq variables
set -euo pipefail
SCRIPT_NAME=restore-postgres.sh
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

require BACKUP_SOURCE '^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[^[:space:]]+|[^[:space:]:]+)$' \
  '/var/backups/emporium/20261203T051500Z   # or s3://my-bucket/postgres/20261203T051500Z'
require TARGET_DATABASE_PREFIX '^[a-z_][a-z0-9_]{0,40}$' 'emporium_restored_'
optional MAINTENANCE_DB postgres '^[A-Za-z0-9_]+$' 'postgres'
need_cmd pg_restore psql sha256sum

src=${BACKUP_SOURCE%/}
work=$(mktemp -d)
scratch=()
cleanup() {
  local db
  for db in "${scratch[@]}"; do
    [ -n "$db" ] || continue
    psql -X -q -d "$MAINTENANCE_DB" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

if [[ $src == s3://* ]]; then
  need_cmd aws
  aws s3 cp --only-show-errors "$src/MANIFEST" "$work/MANIFEST" \
    || die "$src/MANIFEST not found: not a complete backup (BACKUP_SOURCE must name one backup id)"
  dir=$work
else
  [ -f "$src/MANIFEST" ] || die "$src/MANIFEST not found: not a complete backup (BACKUP_SOURCE must name one backup id)"
  dir=$src
  cp "$src/MANIFEST" "$work/MANIFEST"
fi
backup_id=$(basename "$src")

manifest_contexts=$(grep -v '^#' "$work/MANIFEST" | cut -d' ' -f1 | tr '\n' ' ')
optional CONTEXTS "${manifest_contexts% }" '^[a-z ]+$' "'identity catalog'"
for ctx in $CONTEXTS; do
  grep -q "^$ctx " "$work/MANIFEST" || usage_error CONTEXTS "names '$ctx', which is not in $src/MANIFEST." "export CONTEXTS='${manifest_contexts% }'"
done

exists() { [ "$(psql -X -A -t -d "$MAINTENANCE_DB" -c "select count(*) from pg_database where datname = '$1'")" = 1 ]; }
comment_of() { psql -X -A -t -d "$MAINTENANCE_DB" -c "select shobj_description(oid, 'pg_database') from pg_database where datname = '$1'"; }
marker="restored from emporium backup $backup_id"

# Plan: which targets are already restored from this backup (skip), which are in the way (refuse).
todo=()
for ctx in $CONTEXTS; do
  target="$TARGET_DATABASE_PREFIX$ctx"
  if exists "$target"; then
    if [ "$(comment_of "$target")" = "$marker" ]; then
      log "$target is already restored from $backup_id: skipped"
      continue
    fi
    die "database $target already exists and is not a restore of $backup_id: restore into a fresh database (choose another TARGET_DATABASE_PREFIX) or drop it first"
  fi
  todo+=("$ctx")
done
if [ "${#todo[@]}" = 0 ]; then
  log "nothing to restore"
  exit 0
fi

# Fetch and verify every dump before creating anything.
for ctx in "${todo[@]}"; do
  read -r _ _ bytes sum < <(grep "^$ctx " "$work/MANIFEST")
  if [[ $src == s3://* ]]; then
    aws s3 cp --only-show-errors "$src/$ctx.dump" "$work/$ctx.dump"
  fi
  actual=$(sha256sum "$dir/$ctx.dump" | cut -d' ' -f1)
  [ "$actual" = "$sum" ] || die "$ctx.dump: sha256 $actual, the MANIFEST says $sum (corrupt or tampered backup)"
  [ "$(wc -c < "$dir/$ctx.dump")" = "$bytes" ] || die "$ctx.dump: size differs from the MANIFEST"
done
log "checksums of ${#todo[@]} dumps verified"

started=$SECONDS
for ctx in "${todo[@]}"; do
  tmp="$TARGET_DATABASE_PREFIX${ctx}__restoring"
  psql -X -q -v ON_ERROR_STOP=1 -d "$MAINTENANCE_DB" -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS \"$tmp\" WITH (FORCE)" -c "CREATE DATABASE \"$tmp\""
  scratch+=("$tmp")
  log "restoring $ctx into $tmp..."
  pg_restore --exit-on-error --single-transaction --no-owner --no-privileges --no-password \
    --dbname="$tmp" "$dir/$ctx.dump"
done
# Every context restored: now (and only now) give the databases their names.
for ctx in "${todo[@]}"; do
  tmp="$TARGET_DATABASE_PREFIX${ctx}__restoring"
  target="$TARGET_DATABASE_PREFIX$ctx"
  psql -X -q -v ON_ERROR_STOP=1 -d "$MAINTENANCE_DB" \
    -c "ALTER DATABASE \"$tmp\" RENAME TO \"$target\"" \
    -c "COMMENT ON DATABASE \"$target\" IS '$marker'"
  scratch=("${scratch[@]/$tmp/}")
  log "restored $target"
done
log "restore of $backup_id complete: ${#todo[@]} databases in $((SECONDS - started)) s"
