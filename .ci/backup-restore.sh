#!/usr/bin/env bash
# The backup/restore round trip against the real local PostgreSQL (postgres@127.0.0.1:5432, or
# BACKUP_TEST_POSTGRES_URL): per-context databases under a unique prefix are migrated and seeded by
# the real binary, backed up with scripts/backup-postgres.sh to a directory and to an s3:// URL
# (the aws CLI against moto's S3 server, SSE-KMS with a moto KMS key), dropped, restored with
# scripts/restore-postgres.sh from both, and compared table by table (row count and an md5 of the
# ordered rows). Then the refusals: a tampered dump, an existing target, bad variables.
# Everything it creates is dropped in a trap. Tools: target/backup-venv (PyPI moto[server], awscli).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
contexts="identity catalog inventory cart ordering payments notifications"
pg=${BACKUP_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}
prefix="ci_bkp_$$_$(date +%s)_"
work=$(mktemp -d)
bin=target/debug/emporium

moto=""
cleanup() {
  local db
  if [ -n "$moto" ]; then kill "$moto" 2>/dev/null || true; wait "$moto" 2>/dev/null || true; fi
  for db in $(psql -X -A -t "$pg/postgres" -c "select datname from pg_database where datname like '${prefix}%'" 2>/dev/null); do
    psql -X -q "$pg/postgres" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

psql -X -q "$pg/postgres" -c 'select 1' >/dev/null || { echo "PostgreSQL is not reachable at $pg (set BACKUP_TEST_POSTGRES_URL)" >&2; exit 1; }
[ -x "$bin" ] || cargo build --quiet --locked -p emporium
venv=target/backup-venv
if [ ! -x "$venv/bin/moto_server" ] || [ ! -x "$venv/bin/aws" ]; then
  echo "installing moto[server] and awscli into $venv..."
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check 'moto[server]==5.2.5' 'awscli==1.45.11'
fi

# libpq variables for the scripts, from the URL.
eval "$(python3 - "$pg" <<'PY'
import shlex, sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
for k, v in (("PGHOST", u.hostname), ("PGPORT", u.port or 5432), ("PGUSER", u.username), ("PGPASSWORD", u.password)):
    if v is not None:
        print(f"export {k}={shlex.quote(str(v))}")
PY
)"

# 1. Fresh per-context databases, migrated and seeded by the real binary (embedded mode with one
#    PostgreSQL database per context; the in-process event bus carries catalog -> inventory).
for ctx in $contexts; do
  psql -X -q -v ON_ERROR_STOP=1 "$pg/postgres" -c "CREATE DATABASE \"${prefix}src_$ctx\""
  export "EMPORIUM_${ctx^^}_DATABASE_URL=$pg/${prefix}src_$ctx"
done
export EMPORIUM_DATA_DIR="$work/data" RUST_LOG=warn EMPORIUM_SEED_DEMO=false
"$bin" migrate 2>&1 | tail -n 1
"$bin" seed --products 300 --seed 14 --stock 20 2>&1 | tail -n 1
# Some rows in identity too: an administrator (argon2 hash, signing keys).
echo 'backup restore test password' | "$bin" admin create --email backup-test@example.com --name 'Backup Test' 2>&1 | tail -n 1
for ctx in $contexts; do unset "EMPORIUM_${ctx^^}_DATABASE_URL"; done

# Row count and md5 of every table of a database (ordered by the whole row, so independent of
# physical order), one line per table.
fingerprint() {
  local db=$1 t
  for t in $(psql -X -A -t -d "$db" -c "select quote_ident(schemaname)||'.'||quote_ident(tablename) from pg_tables where schemaname not in ('pg_catalog','information_schema') order by 1"); do
    printf '%s %s\n' "$t" "$(psql -X -A -t -d "$db" -c "select count(*)||' '||coalesce(md5(string_agg(r::text, '|' order by r::text)), '-') from $t r")"
  done
}
for ctx in $contexts; do fingerprint "${prefix}src_$ctx" > "$work/before.$ctx"; done
tables=$(cat "$work"/before.* | wc -l)
rows=$(cat "$work"/before.* | awk '{s+=$2} END {print s}')
if [ "$tables" -lt 7 ] || [ "$rows" -le 300 ]; then
  echo "seeding left too little to compare: $tables tables, $rows rows" >&2
  exit 1
fi
echo "seeded: $tables tables, $rows rows over ${contexts// /, }"

# 2. Back up (twice with the same id: the second run must do nothing).
export BACKUP_DEST="$work/backups" BACKUP_ID=ci-roundtrip DATABASE_PREFIX="${prefix}src_"
bash scripts/backup-postgres.sh >/dev/null
bash scripts/backup-postgres.sh 2>&1 | grep -q 'already complete' || { echo "a re-run of the backup did not notice it was done" >&2; exit 1; }
for ctx in $contexts; do [ -s "$BACKUP_DEST/ci-roundtrip/$ctx.dump" ] || { echo "no dump for $ctx" >&2; exit 1; }; done

# ... and to S3 (moto's server; the aws CLI honours AWS_ENDPOINT_URL), encrypted with a KMS key.
s3_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$venv/bin/moto_server" -H 127.0.0.1 -p "$s3_port" > "$work/moto.log" 2>&1 &
moto=$!
for _ in $(seq 1 100); do curl -fs -o /dev/null "http://127.0.0.1:$s3_port/" && break; sleep 0.1; done
# s3 CMD... -- runs CMD with the venv's aws CLI pointed at moto.
s3() {
  env PATH="$PWD/$venv/bin:$PATH" AWS_ENDPOINT_URL="http://127.0.0.1:$s3_port" AWS_ACCESS_KEY_ID=ci \
    AWS_SECRET_ACCESS_KEY=ci AWS_DEFAULT_REGION=eu-central-1 "$@"
}
s3 aws s3 mb s3://emporium-ci-backups >/dev/null
key=$(s3 aws kms create-key --query KeyMetadata.Arn --output text)
s3 env BACKUP_DEST=s3://emporium-ci-backups/postgres BACKUP_ID=ci-s3 S3_KMS_KEY_ID="$key" bash scripts/backup-postgres.sh >/dev/null
s3 env BACKUP_DEST=s3://emporium-ci-backups/postgres BACKUP_ID=ci-s3 bash scripts/backup-postgres.sh 2>&1 | grep -q 'already complete' \
  || { echo "a re-run of the S3 backup did not notice it was done" >&2; exit 1; }
[ "$(s3 aws s3 ls s3://emporium-ci-backups/postgres/ci-s3/ | wc -l)" = 8 ] || { echo "the S3 backup is not 7 dumps + MANIFEST" >&2; exit 1; }
sse=$(s3 aws s3api head-object --bucket emporium-ci-backups --key postgres/ci-s3/catalog.dump --query ServerSideEncryption --output text)
[ "$sse" = aws:kms ] || { echo "the S3 dump is not SSE-KMS encrypted ($sse)" >&2; exit 1; }
echo "backed up to s3://emporium-ci-backups/postgres/ci-s3 (SSE-KMS)"
# The two-container Job's way: a directory backup uploaded afterwards; it must equal the direct one.
s3 env BACKUP_DEST=s3://emporium-ci-backups/uploaded BACKUP_UPLOAD_FROM="$BACKUP_DEST/ci-roundtrip" bash scripts/backup-postgres.sh >/dev/null
s3 aws s3 cp --quiet s3://emporium-ci-backups/uploaded/ci-roundtrip/MANIFEST "$work/uploaded.MANIFEST"
cmp -s "$work/uploaded.MANIFEST" "$BACKUP_DEST/ci-roundtrip/MANIFEST" || { echo "the uploaded MANIFEST differs" >&2; exit 1; }

# 3. Drop the originals.
for ctx in $contexts; do psql -X -q "$pg/postgres" -c "DROP DATABASE \"${prefix}src_$ctx\" WITH (FORCE)"; done

# 4. Restore into fresh databases (and once more: nothing to do), compare.
export BACKUP_SOURCE="$BACKUP_DEST/ci-roundtrip" TARGET_DATABASE_PREFIX="${prefix}dst_"
bash scripts/restore-postgres.sh
bash scripts/restore-postgres.sh 2>&1 | grep -q 'nothing to restore' || { echo "a re-run of the restore did not notice it was done" >&2; exit 1; }
for ctx in $contexts; do
  fingerprint "${prefix}dst_$ctx" > "$work/after.$ctx"
  if ! diff -u "$work/before.$ctx" "$work/after.$ctx"; then
    echo "context $ctx differs after the restore" >&2
    exit 1
  fi
done
echo "restored from the directory: every table's row count and checksum match"
s3 env BACKUP_SOURCE=s3://emporium-ci-backups/postgres/ci-s3 TARGET_DATABASE_PREFIX="${prefix}s3_" \
  bash scripts/restore-postgres.sh 2>&1 | tail -n 1
for ctx in $contexts; do
  fingerprint "${prefix}s3_$ctx" | diff -u "$work/before.$ctx" - || { echo "context $ctx differs after the restore from S3" >&2; exit 1; }
done
echo "restored from S3: every table's row count and checksum match"

# 5. The restored databases serve: the binary migrates them (no-op) and lists the catalog.
for ctx in $contexts; do export "EMPORIUM_${ctx^^}_DATABASE_URL=$pg/${prefix}dst_$ctx"; done
"$bin" migrate >/dev/null 2>&1 || { echo "migrate on the restored databases failed" >&2; exit 1; }
for ctx in $contexts; do unset "EMPORIUM_${ctx^^}_DATABASE_URL"; done

# 6. Refusals: a corrupt dump, an existing target, bad variables.
cp -r "$BACKUP_DEST/ci-roundtrip" "$work/tampered"
printf 'x' >> "$work/tampered/catalog.dump"
if out=$(BACKUP_SOURCE="$work/tampered" TARGET_DATABASE_PREFIX="${prefix}t_" bash scripts/restore-postgres.sh 2>&1); then
  echo "a tampered dump was restored" >&2; exit 1
fi
grep -q 'sha256' <<<"$out" || { echo "tampered dump refused for the wrong reason: $out" >&2; exit 1; }
[ -z "$(psql -X -A -t "$pg/postgres" -c "select datname from pg_database where datname like '${prefix}t\\_%'")" ] \
  || { echo "a refused restore left databases behind" >&2; exit 1; }
psql -X -q "$pg/postgres" -c "CREATE DATABASE \"${prefix}x_cart\""
if out=$(BACKUP_SOURCE="$BACKUP_DEST/ci-roundtrip" TARGET_DATABASE_PREFIX="${prefix}x_" bash scripts/restore-postgres.sh 2>&1); then
  echo "a restore overwrote an existing database" >&2; exit 1
fi
grep -q 'already exists' <<<"$out" || { echo "existing target refused for the wrong reason: $out" >&2; exit 1; }
[ "$(psql -X -A -t "$pg/postgres" -c "select count(*) from pg_database where datname like '${prefix}x\\_%'")" = 1 ] \
  || { echo "a refused restore created databases" >&2; exit 1; }
for bad in "BACKUP_DEST=" "BACKUP_DEST=ftp://host/x" "BACKUP_ID=a/b" "CONTEXTS=shipping"; do
  if out=$(env "$bad" bash scripts/backup-postgres.sh 2>&1); then echo "backup accepted $bad" >&2; exit 1; fi
  grep -q "${bad%%=*}" <<<"$out" || { echo "backup refused $bad without naming it: $out" >&2; exit 1; }
done
if out=$(env -u TARGET_DATABASE_PREFIX bash scripts/restore-postgres.sh 2>&1); then echo "restore ran without TARGET_DATABASE_PREFIX" >&2; exit 1; fi
grep -q 'TARGET_DATABASE_PREFIX is not set' <<<"$out" || { echo "restore did not name the missing variable: $out" >&2; exit 1; }

echo "backup/restore round trip: OK ($((SECONDS - started)) s)"
