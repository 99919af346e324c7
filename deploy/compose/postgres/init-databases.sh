#!/usr/bin/env bash
# One database per context, each owned by a role of its own that can connect to nothing else.
# The postgres image runs this once, from /docker-entrypoint-initdb.d, on the first start of an
# empty data volume; it is safe to run again by hand (what exists is left alone, passwords are
# reset to the current ones):
#   docker compose exec postgres bash /docker-entrypoint-initdb.d/10-init-databases.sh
#
# Reads <CONTEXT>_DB_PASSWORD for each context (compose passes them from .env), POSTGRES_USER
# and POSTGRES_DB (the image's), and DB_NAME_PREFIX (optional, default none: prepended to every
# role and database name, so several stacks can share one server; .ci/compose-smoke.sh uses it).
# Connects where psql's usual variables say (PGHOST, PGPORT; in the container: the local socket).
set -euo pipefail

prefix=${DB_NAME_PREFIX:-}
if [[ ! "$prefix" =~ ^[a-z0-9_]*$ ]]; then
  echo "init-databases: DB_NAME_PREFIX must be lower-case letters, digits and '_' (got '$prefix')" >&2
  exit 1
fi
contexts=(identity catalog inventory cart ordering payments notifications)

# Every password first: a missing one stops the script before anything is created.
for ctx in "${contexts[@]}"; do
  var="${ctx^^}_DB_PASSWORD"
  if [ -z "${!var:-}" ]; then
    echo "init-databases: $var is not set; set it in deploy/compose/.env (e.g. openssl rand -hex 24)" >&2
    exit 1
  fi
done

for ctx in "${contexts[@]}"; do
  var="${ctx^^}_DB_PASSWORD"
  name="${prefix}${ctx}"
  psql -v ON_ERROR_STOP=1 -q --no-psqlrc \
    --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
    --set name="$name" --set password="${!var}" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'name')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'name') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L', :'name', :'password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'name', :'name')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'name') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'name') \gexec
SELECT format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', :'name', :'name') \gexec
SQL
  echo "init-databases: database $name, owned by role $name"
done
