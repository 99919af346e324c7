#!/usr/bin/env bash
# Creates each context's PostgreSQL role and database on the environment's RDS instance, with
# the password Terraform put into emporium/<env>/<context>-database-url. Safe to re-run: an
# existing role gets its password reset to the secret's value, an existing database is kept.
# The tables come afterwards from each context's migration Job (`emporium migrate --service <name>`).
#
# RDS is in isolated subnets, reachable only from the cluster: the SQL runs in a short-lived
# psql pod in the environment's namespace. The pod spec holds no secret; the master password
# and the SQL reach psql on its standard input.
#
#   DEPLOY_ENV=prod AWS_REGION=eu-central-1 deploy/terraform/scripts/bootstrap-databases.sh
#   (K8S_NAMESPACE overrides the namespace, emporium-<env>; PSQL_IMAGE the psql image)
#
# Needs: aws (credentials that may read the secrets), kubectl pointed at the environment's
# cluster (terraform output kubeconfig_command), python3, terraform (outputs of envs/<env>).
set -euo pipefail

die() { echo "bootstrap-databases: $*" >&2; exit 2; }

env_name=${DEPLOY_ENV:-}
[ -n "$env_name" ] || die "DEPLOY_ENV is not set: export DEPLOY_ENV=dev|staging|prod (the envs/<env> directory that was applied)"
[[ "$env_name" =~ ^[a-z][a-z0-9-]{1,15}$ ]] || die "DEPLOY_ENV='$env_name' is not an environment name (lower-case letters, digits, dashes)"
region=${AWS_REGION:-${AWS_DEFAULT_REGION:-}}
[ -n "$region" ] || die "AWS_REGION is not set: export AWS_REGION=<the environment's region, e.g. eu-central-1>"
namespace=${K8S_NAMESPACE:-emporium-$env_name}
image=${PSQL_IMAGE:-public.ecr.aws/docker/library/postgres:16-alpine}
contexts=(identity catalog inventory cart ordering payments notifications)

for tool in aws kubectl python3 terraform; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed"
done

here=$(cd "$(dirname "$0")" && pwd)
env_dir="$here/../envs/$env_name"
[ -d "$env_dir" ] || die "no Terraform environment at $env_dir"

kubectl get namespace "$namespace" >/dev/null 2>&1 \
  || die "namespace $namespace not found in the current kubectl context ($(kubectl config current-context 2>/dev/null || echo none)): run the kubeconfig_command output first, and apply the overlay's namespace"

master_arn=$(terraform -chdir="$env_dir" output -raw postgres_master_secret_arn) \
  || die "cannot read the outputs of $env_dir: run terraform init and apply there first"

secret() { aws secretsmanager get-secret-value --region "$region" --secret-id "$1" --query SecretString --output text; }

master_json=$(secret "$master_arn") || die "cannot read the RDS master secret $master_arn"

# Everything psql needs, as one script on standard input: the connection (from the master
# secret) and one idempotent block per context (from its database URL secret).
build_sql=$(cat <<'PY'
import json, os, sys, urllib.parse

master = json.loads(os.environ["MASTER_JSON"])
first = None
blocks = []
for line in sys.stdin.read().splitlines():
    ctx, url = line.split("\t", 1)
    u = urllib.parse.urlsplit(url)
    if u.scheme not in ("postgres", "postgresql") or u.username != ctx or not u.password or u.path != "/" + ctx:
        sys.exit(f"emporium/<env>/{ctx}-database-url is not postgres://{ctx}:<password>@<host>:<port>/{ctx}")
    first = first or u
    pw = urllib.parse.unquote(u.password).replace("\x27", "\x27\x27")
    blocks.append(f"""
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = \x27{ctx}\x27) THEN CREATE ROLE {ctx} LOGIN; END IF;
END $$;
ALTER ROLE {ctx} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD \x27{pw}\x27;
GRANT {ctx} TO CURRENT_USER;
SELECT \x27CREATE DATABASE {ctx} OWNER {ctx}\x27 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = \x27{ctx}\x27)\\gexec
REVOKE ALL ON DATABASE {ctx} FROM PUBLIC;
GRANT ALL ON DATABASE {ctx} TO {ctx};
GRANT CONNECT ON DATABASE {ctx} TO emporium_backup;
""")
if first is None:
    sys.exit("no database URL secrets were read")
# The backup Jobs' role (first: the contexts' blocks grant it CONNECT): reads everything, logs in
# only with an IAM token (rds_iam), owns nothing.
blocks.insert(0, """
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = \x27emporium_backup\x27) THEN CREATE ROLE emporium_backup LOGIN; END IF;
END $$;
ALTER ROLE emporium_backup WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
GRANT pg_read_all_data TO emporium_backup;
GRANT rds_iam TO emporium_backup;
""")
user = urllib.parse.quote(master["username"], safe="")
password = urllib.parse.quote(master["password"], safe="")
print(f"export PGURL=\x27postgres://{user}:{password}@{first.hostname}:{first.port or 5432}/emporium_admin?sslmode=require\x27")
print("psql \"$PGURL\" -v ON_ERROR_STOP=1 -q <<\x27SQL\x27")
print("".join(blocks))
print("SQL")
print("echo databases ready")
PY
)
sql_script=$(
  {
    for ctx in "${contexts[@]}"; do
      url=$(secret "emporium/$env_name/$ctx-database-url") || die "cannot read emporium/$env_name/$ctx-database-url"
      printf '%s\t%s\n' "$ctx" "$url"
    done
  } | MASTER_JSON="$master_json" python3 -c "$build_sql"
) || die "could not build the bootstrap SQL"

pod="emporium-db-bootstrap-$(date +%s)"
overrides=$(cat <<JSON
{
  "apiVersion": "v1",
  "metadata": {"labels": {"app.kubernetes.io/name": "db-bootstrap", "app.kubernetes.io/part-of": "emporium", "emporium.dev/uses-postgres": "true"}},
  "spec": {
    "automountServiceAccountToken": false,
    "securityContext": {"runAsNonRoot": true, "runAsUser": 70, "runAsGroup": 70, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [{
      "name": "$pod", "image": "$image", "command": ["sh"], "stdin": true, "stdinOnce": true,
      "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}},
      "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}
    }]
  }
}
JSON
)

echo "creating roles and databases for ${contexts[*]} through pod $namespace/$pod..."
printf '%s\n' "$sql_script" | kubectl run "$pod" --namespace "$namespace" --image "$image" --restart Never \
  --rm --attach --stdin --quiet --pod-running-timeout=3m --overrides "$overrides"
echo "done: now run the migration Jobs (the overlay's <context>-migrate Jobs) before the Deployments"
