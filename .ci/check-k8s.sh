#!/usr/bin/env bash
# The Kubernetes manifests (deploy/k8s), checked by their real tools:
#   1. the generated files match deploy/k8s/tools/generate.py (processes, ExternalSecrets, the
#      PrometheusRule from observability/prometheus/rules/*.yml, and the copies of
#      scripts/backup-postgres.sh and scripts/lib/common.sh in components/backups/scripts that the
#      backup CronJob's ConfigMap is generated from: kustomize loads no file from outside a
#      kustomization's directory);
#   2. `kubectl kustomize` renders every overlay and the cluster prerequisites;
#   3. every object of an overlay has its apply phase (emporium.dev/phase), and passes
#      kubernetes-validate --strict (custom resources have no bundled schema: counted, not checked);
#   4. checkov on every rendering: zero failed checks (a finding that does not apply carries a
#      `checkov.io/skipN` annotation with its reason on the resource);
#   5. shellcheck on the scripts that deploy/k8s comes with.
# Tools go into target/ci-venv (created when missing); nothing installed by hand is relied on.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/ci-venv
kv_version=1.37.0
checkov_version=3.3.30
# The Kubernetes version EKS runs (docs/deploy.md); the preStop `sleep` action needs 1.30+.
k8s_version=1.33.0

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/kubernetes-validate" --version 2>/dev/null | grep -qx "$kv_version" ||
  ! "$venv/bin/checkov" --version 2>/dev/null | grep -qx "$checkov_version" ||
  ! "$venv/bin/python" -c 'import yaml' 2>/dev/null; then
  echo "installing kubernetes-validate $kv_version, checkov $checkov_version and PyYAML into $venv..."
  # Other checks install into the same venv: one pip at a time.
  flock "$venv/.install.lock" "$venv/bin/python" -m pip install -q --disable-pip-version-check \
    "kubernetes-validate==$kv_version" "checkov==$checkov_version" "PyYAML>=6,<7"
fi
if ! command -v shellcheck >/dev/null 2>&1; then
  echo "installing shellcheck (Debian package shellcheck)..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends shellcheck >/dev/null
fi
command -v kubectl >/dev/null || { echo "kubectl is needed for 'kubectl kustomize'" >&2; exit 1; }

out=target/ci/k8s
rm -rf "$out"
mkdir -p "$out"

echo "== generated manifests (and the backup scripts copied into components/backups) are up to date"
"$venv/bin/python" deploy/k8s/tools/generate.py --check

echo "== kubectl kustomize"
targets="overlays/dev overlays/staging overlays/prod cluster"
for t in $targets; do
  name=${t##*/}
  kubectl kustomize "deploy/k8s/$t" >"$out/$name.yaml"
  echo "$t: $(grep -c '^kind:' "$out/$name.yaml") objects"
done

echo "== kubernetes-validate --strict (Kubernetes $k8s_version)"
# Every object of an overlay must carry its apply phase (docs/deploy.md). One file per object, so
# a failure names the object; custom resources have no bundled schema and are counted as such
# (cert-manager, External Secrets and the Prometheus Operator own them).
"$venv/bin/python" - "$out" <<'EOF'
import os, sys, yaml
out = sys.argv[1]
unphased = []
for name in sorted(os.listdir(out)):
    if not name.endswith(".yaml"):
        continue
    split = os.path.join(out, "split", name[:-5])
    os.makedirs(split, exist_ok=True)
    with open(os.path.join(out, name)) as f:
        for i, doc in enumerate(yaml.safe_load_all(f)):
            if doc:
                phase = (doc["metadata"].get("labels") or {}).get("emporium.dev/phase")
                if name != "cluster.yaml" and phase not in ("prepare", "migrate", "serve"):
                    unphased.append(f"{name}: {doc['kind']} {doc['metadata']['name']}")
                path = os.path.join(split, f"{i:03d}-{doc['kind']}-{doc['metadata']['name']}.yaml")
                with open(path, "w") as g:
                    yaml.safe_dump(doc, g)
if unphased:
    sys.exit("objects without an emporium.dev/phase label (components/phases): " + ", ".join(unphased))
EOF
# Only the custom resources of these operators may go without a schema: a misspelt core kind
# (apiVersion apps/v1, kind Deploymnet) must not pass as "no schema".
crd_groups='external-secrets.io|monitoring.coreos.com|cert-manager.io'
for dir in "$out"/split/*; do
  log="$out/validate-${dir##*/}.log"
  if ! "$venv/bin/kubernetes-validate" --strict -k "$k8s_version" "$dir"/*.yaml >"$log" 2>&1; then
    grep -v ' passed for ' "$log" >&2
    echo "kubernetes-validate: ${dir##*/} has invalid objects (above)" >&2
    exit 1
  fi
  if grep -v ' passed for ' "$log" | grep -v -E "Couldn't find schema for kind [A-Za-z]+ with api version ($crd_groups)/" | grep -q .; then
    grep -v ' passed for ' "$log" >&2
    echo "kubernetes-validate: unexpected output for ${dir##*/} (above)" >&2
    exit 1
  fi
  echo "${dir##*/}: $(grep -c ' passed for ' "$log" || true) objects valid (strict)," \
    "$(grep -c "Couldn't find schema" "$log" || true) custom resources without a bundled schema"
done

echo "== checkov"
for t in $targets; do
  name=${t##*/}
  if ! "$venv/bin/checkov" --compact --framework kubernetes --skip-download \
    -f "$out/$name.yaml" >"$out/checkov-$name.log" 2>&1; then
    grep -v -E '^(\s*$|Check: .* PASSED|\s+PASSED)' "$out/checkov-$name.log" >&2
    echo "checkov: failed checks in the $name rendering (fix them, or annotate the resource with" \
      "checkov.io/skipN: <CHECK>=<why it does not apply>)" >&2
    exit 1
  fi
  summary=$(grep -m1 -o 'Passed checks: .*' "$out/checkov-$name.log" || true)
  echo "$name: ${summary:-no Kubernetes checks apply (namespaces and custom resources only)}"
done

echo "== shellcheck"
shellcheck .ci/check-k8s.sh .ci/deploy-smoke.sh
echo "Kubernetes manifests: OK"
