#!/usr/bin/env bash
# Backs up every context's PostgreSQL database with `pg_dump --format=custom`, one file per context,
# into a directory or an s3:// URL:
#
#   <BACKUP_DEST>/<BACKUP_ID>/<context>.dump   one per context
#   <BACKUP_DEST>/<BACKUP_ID>/MANIFEST         written last: context, database, bytes, sha256
#
# A backup without its MANIFEST is incomplete and restore-postgres.sh refuses it. Nothing is left
# half-written: dumps go to a temporary directory first and are moved (or uploaded) only when all
# of them succeeded. Re-running with the same BACKUP_ID after a success does nothing.
#
#   BACKUP_DEST      required  /var/backups/emporium  or  s3://my-bucket/postgres (needs `aws`)
#   BACKUP_ID        default   the UTC time, e.g. 20261203T051500Z ([A-Za-z0-9._-], no slash)
#   DATABASE_PREFIX  default   empty: a context's database is named after it (identity, catalog, ...),
#                              as on RDS and in the Kubernetes overlays; <prefix><context> otherwise
#   BACKUP_UPLOAD_FROM  optional  a complete local backup (directory with MANIFEST) to upload to the
#                              s3:// BACKUP_DEST instead of dumping: for a Job whose PostgreSQL
#                              container has no aws CLI (its checksums are verified first)
#   CONTEXTS         default   "identity catalog inventory cart ordering payments notifications"
#   PGHOST PGPORT PGUSER PGPASSWORD / PGPASSFILE / PGSSLMODE: the usual libpq variables
#   S3_KMS_KEY_ID    optional  KMS key ARN to encrypt uploads with; unset, the bucket's default
#                              encryption applies (deploy/terraform: SSE-KMS with the bucket's key)
set -euo pipefail
SCRIPT_NAME=backup-postgres.sh
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

ALL_CONTEXTS="identity catalog inventory cart ordering payments notifications"
require BACKUP_DEST '^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^[:space:]]*)?|/[^[:space:]]*|\.{0,2}/?[^[:space:]:]+)$' \
  '/var/backups/emporium   # or s3://my-bucket/postgres'
optional BACKUP_ID "$(date -u +%Y%m%dT%H%M%SZ)" '^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$' '20261203T051500Z'
optional DATABASE_PREFIX "" '^[a-z_][a-z0-9_]{0,40}$' 'emporium_   # or unset: the databases are named after their contexts'
optional BACKUP_UPLOAD_FROM "" '^[^[:space:]]+$' '/backup/20261203T051500Z'
if [ -n "$BACKUP_UPLOAD_FROM" ]; then
  [[ $BACKUP_DEST == s3://* ]] || usage_error BACKUP_DEST "must be an s3:// URL with BACKUP_UPLOAD_FROM." "export BACKUP_DEST=s3://my-bucket/postgres"
  [ -f "$BACKUP_UPLOAD_FROM/MANIFEST" ] || usage_error BACKUP_UPLOAD_FROM "has no MANIFEST: not a complete backup." "export BACKUP_UPLOAD_FROM=<a directory written by this script>"
  BACKUP_ID=$(basename "$BACKUP_UPLOAD_FROM")
fi
optional CONTEXTS "$ALL_CONTEXTS" '^[a-z ]+$' "'identity catalog'"
optional S3_KMS_KEY_ID "" '^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)/[A-Za-z0-9/_-]+$' 'arn:aws:kms:eu-central-1:111122223333:key/<id>   # terraform output of the s3 module: kms_key_arn'
for ctx in $CONTEXTS; do
  [[ " $ALL_CONTEXTS " == *" $ctx "* ]] || usage_error CONTEXTS "names an unknown context '$ctx'." "export CONTEXTS='$ALL_CONTEXTS'"
done
need_cmd sha256sum
[ -n "$BACKUP_UPLOAD_FROM" ] || need_cmd pg_dump psql
s3=false
sse=()
if [[ $BACKUP_DEST == s3://* ]]; then
  s3=true
  need_cmd aws
  [ -n "$S3_KMS_KEY_ID" ] && sse=(--sse aws:kms --sse-kms-key-id "$S3_KMS_KEY_ID")
fi
dest=${BACKUP_DEST%/}/$BACKUP_ID

# Already done? (safe re-run)
if $s3; then
  if aws s3 ls "$dest/MANIFEST" >/dev/null 2>&1; then
    log "backup $dest is already complete (MANIFEST present): nothing to do"
    exit 0
  fi
elif [ -f "$dest/MANIFEST" ]; then
  log "backup $dest is already complete (MANIFEST present): nothing to do"
  exit 0
elif [ -e "$dest" ]; then
  die "$dest exists without a MANIFEST (an interrupted run?): remove it or choose another BACKUP_ID"
fi

# Upload only: verify, then the dumps, then the MANIFEST.
if [ -n "$BACKUP_UPLOAD_FROM" ]; then
  while read -r ctx _ bytes sum; do
    if [ "$(sha256sum "$BACKUP_UPLOAD_FROM/$ctx.dump" | cut -d' ' -f1)" != "$sum" ] \
      || [ "$(wc -c < "$BACKUP_UPLOAD_FROM/$ctx.dump")" != "$bytes" ]; then
      die "$BACKUP_UPLOAD_FROM/$ctx.dump does not match its MANIFEST: not uploaded"
    fi
    aws s3 cp --only-show-errors "${sse[@]}" "$BACKUP_UPLOAD_FROM/$ctx.dump" "$dest/$ctx.dump"
  done < <(grep -v '^#' "$BACKUP_UPLOAD_FROM/MANIFEST")
  aws s3 cp --only-show-errors "${sse[@]}" "$BACKUP_UPLOAD_FROM/MANIFEST" "$dest/MANIFEST"
  log "uploaded $BACKUP_UPLOAD_FROM to $dest"
  echo "$dest"
  exit 0
fi

# Every database must be reachable before the first dump: fail early, not after half of them.
for ctx in $CONTEXTS; do
  psql -X -q -v ON_ERROR_STOP=1 -d "$DATABASE_PREFIX$ctx" -c 'select 1' >/dev/null \
    || die "cannot connect to database $DATABASE_PREFIX$ctx (check PGHOST/PGPORT/PGUSER/PGPASSWORD and DATABASE_PREFIX)"
done

if $s3; then
  staging=$(mktemp -d)
  trap 'rm -rf "$staging"' EXIT
else
  mkdir -p "$(dirname "$dest")"
  staging="$dest.partial.$$"
  mkdir "$staging"
  trap 'rm -rf "$staging"' EXIT
fi

server_version=$(psql -X -A -t -d "$DATABASE_PREFIX${CONTEXTS%% *}" -c 'show server_version')
{
  echo "# Emporium PostgreSQL backup $BACKUP_ID"
  echo "# created $(date -u +%Y-%m-%dT%H:%M:%SZ) by $(pg_dump --version), server $server_version"
  echo "# context database bytes sha256"
} > "$staging/MANIFEST.tmp"
started=$SECONDS
for ctx in $CONTEXTS; do
  db="$DATABASE_PREFIX$ctx"
  log "dumping $db..."
  pg_dump --format=custom --compress=6 --no-password --file="$staging/$ctx.dump" --dbname="$db"
  bytes=$(wc -c < "$staging/$ctx.dump")
  sum=$(sha256sum "$staging/$ctx.dump" | cut -d' ' -f1)
  echo "$ctx $db $bytes $sum" >> "$staging/MANIFEST.tmp"
done

if $s3; then
  for ctx in $CONTEXTS; do
    aws s3 cp --only-show-errors "${sse[@]}" "$staging/$ctx.dump" "$dest/$ctx.dump"
  done
  # The MANIFEST last: until it is there, the backup does not exist for restore-postgres.sh.
  aws s3 cp --only-show-errors "${sse[@]}" "$staging/MANIFEST.tmp" "$dest/MANIFEST"
else
  mv "$staging/MANIFEST.tmp" "$staging/MANIFEST"
  mv "$staging" "$dest"
fi
log "backup complete: $dest ($(echo "$CONTEXTS" | wc -w) contexts in $((SECONDS - started)) s)"
echo "$dest"
