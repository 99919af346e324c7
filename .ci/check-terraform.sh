#!/usr/bin/env bash
# Checks deploy/terraform without AWS credentials or provider downloads (the terraform CLI cannot
# fetch providers on these machines, so `terraform validate` is out of reach):
#   1. `terraform fmt -check -recursive` (canonical formatting),
#   2. every .tf/.tfvars/.hcl file parsed with python-hcl2 (a syntax error fails), and the
#      references checked (undeclared variables, locals, resources, module inputs and outputs),
#   3. checkov's Terraform checks: zero failed checks; a deliberate exception is an inline
#      `#checkov:skip=CKV_...:reason` on the resource, and the reason is part of the review,
#   4. the Secrets Manager keys deploy/k8s reads are the ones modules/secrets creates,
#   5. shellcheck on this script and deploy/terraform/scripts/*.sh.
# Tools are installed idempotently (pinned versions) into target/ci-venv; nothing installed by
# hand is relied on. Usage: bash .ci/check-terraform.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CHECKOV_VERSION=3.3.30
HCL2_VERSION=8.1.4
venv=target/ci-venv
# checkov depends on bc-python-hcl2, which installs the same `hcl2` module as python-hcl2: keep
# python-hcl2 in its own directory inside the venv so neither overwrites the other.
hcl2_dir=$venv/python-hcl2-$HCL2_VERSION
tf_dir=deploy/terraform
started=$SECONDS
step() { printf '\n== terraform: %s (%ss)\n' "$1" "$((SECONDS - started))"; }

step "tools"
if ! command -v terraform >/dev/null 2>&1; then
  echo "terraform CLI not found: it is needed for 'terraform fmt' (install Terraform >= 1.6)" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if [ "$("$venv/bin/python" -m pip show checkov 2>/dev/null | sed -n 's/^Version: //p')" != "$CHECKOV_VERSION" ]; then
  echo "installing checkov $CHECKOV_VERSION into $venv..."
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "checkov==$CHECKOV_VERSION"
fi
if [ ! -f "$hcl2_dir/.installed" ]; then
  echo "installing python-hcl2 $HCL2_VERSION into $hcl2_dir..."
  rm -rf "$hcl2_dir"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --target "$hcl2_dir" "python-hcl2==$HCL2_VERSION"
  touch "$hcl2_dir/.installed"
fi
if ! command -v shellcheck >/dev/null 2>&1; then
  echo "installing shellcheck (Debian package shellcheck)..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends shellcheck >/dev/null
fi
TF_CLI_CONFIG_FILE=/dev/null terraform version | sed -n 1p
"$venv/bin/checkov" --version

step "terraform fmt -check -recursive $tf_dir"
# fmt reads no CLI configuration; an unset or missing one only makes it print a warning.
if ! TF_CLI_CONFIG_FILE=/dev/null terraform fmt -check -recursive -diff "$tf_dir"; then
  echo "FAILED: run 'terraform fmt -recursive $tf_dir'" >&2
  exit 1
fi

step "parse every file with python-hcl2"
PYTHONPATH="$hcl2_dir" "$venv/bin/python" - "$tf_dir" <<'PY'
import pathlib, sys
import hcl2

root = pathlib.Path(sys.argv[1])
files = sorted(p for p in root.rglob("*") if p.suffix in {".tf", ".tfvars", ".hcl"} and ".terraform" not in p.parts)
failed = 0
for path in files:
    try:
        with path.open() as f:
            hcl2.load(f)
    except Exception as e:  # any parser error is a failure, with the file named
        failed += 1
        print(f"PARSE ERROR {path}: {e}", file=sys.stderr)
print(f"parsed {len(files) - failed}/{len(files)} files")
if failed or not files:
    sys.exit(1)
PY

step "references: variables, locals, resources, module inputs and outputs"
PYTHONPATH="$hcl2_dir" "$venv/bin/python" - "$tf_dir" <<'PY'
# What `terraform validate` would catch without providers: every var., local., data., resource
# and module output referenced in a directory is declared there (or by the called module), every
# module call passes only variables the module declares, and all the ones it requires.
import pathlib, re, sys
import hcl2

root = pathlib.Path(sys.argv[1]).resolve()
errors = []

def load_dir(d):
    blocks = {"variable": {}, "output": {}, "locals": set(), "resource": set(), "data": set(), "module": {}}
    text = ""
    for f in sorted(d.glob("*.tf")):
        raw = f.read_text()
        text += "\n" + raw
        doc = hcl2.loads(raw)
        for v in doc.get("variable", []):
            for name, body in v.items():
                blocks["variable"][name.strip('"')] = body
        for o in doc.get("output", []):
            for name in o:
                blocks["output"][name.strip('"')] = True
        for l in doc.get("locals", []):
            blocks["locals"].update(k for k in l if not k.startswith("__"))
        for r in doc.get("resource", []):
            for t, inst in r.items():
                for n in inst:
                    blocks["resource"].add((t.strip('"'), n.strip('"')))
        for r in doc.get("data", []):
            for t, inst in r.items():
                for n in inst:
                    blocks["data"].add((t.strip('"'), n.strip('"')))
        for m in doc.get("module", []):
            for name, body in m.items():
                blocks["module"][name.strip('"')] = body
    # drop comments so references in prose do not count
    code = re.sub(r'(?m)^\s*#.*$', '', text)
    code = re.sub(r'(?m)\s#[^"\n]*$', '', code)
    return blocks, code

dirs = sorted({p.parent for p in root.rglob("*.tf") if ".terraform" not in p.parts})
info = {d: load_dir(d) for d in dirs}
for d, (b, code) in info.items():
    rel = d.relative_to(root)
    for v in set(re.findall(r'\bvar\.([A-Za-z_][A-Za-z0-9_-]*)', code)):
        if v not in b["variable"]:
            errors.append(f"{rel}: var.{v} is not declared")
    for l in set(re.findall(r'\blocal\.([A-Za-z_][A-Za-z0-9_-]*)', code)):
        if l not in b["locals"]:
            errors.append(f"{rel}: local.{l} is not declared")
    for t, n in set(re.findall(r'(?<![\w.])data\.([a-z0-9_]+)\.([A-Za-z0-9_-]+)', code)):
        if (t, n) not in b["data"]:
            errors.append(f"{rel}: data.{t}.{n} is not declared")
    for t, n in set(re.findall(r'(?<![\w."/:-])((?:aws|random|tls)_[a-z0-9_]+)\.([A-Za-z_][A-Za-z0-9_-]*)', code)):
        if (t, n) not in b["resource"]:
            errors.append(f"{rel}: {t}.{n} is not declared")
    for m, out in set(re.findall(r'\bmodule\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)', code)):
        if m not in b["module"]:
            errors.append(f"{rel}: module.{m} is not declared")
            continue
        src = (d / b["module"][m]["source"].strip("\"")).resolve()
        child = info.get(src)
        if child is None:
            errors.append(f"{rel}: module.{m} source {src} not found")
        elif out not in child[0]["output"]:
            errors.append(f"{rel}: module.{m}.{out}: {src.name} has no such output")
    for m, body in b["module"].items():
        src = (d / body["source"].strip("\"")).resolve()
        child = info.get(src)
        if child is None:
            continue
        meta = {"source", "providers", "depends_on", "count", "for_each", "version", "__start_line__", "__end_line__"}
        given = {k for k in body if k not in meta and not k.startswith("__")}
        for k in given - set(child[0]["variable"]):
            errors.append(f"{rel}: module.{m} passes {k}, which {src.name} does not declare")
        for k, v in child[0]["variable"].items():
            if "default" not in v and k not in given:
                errors.append(f"{rel}: module.{m} does not pass the required {k}")
print(f"references checked in {len(dirs)} directories: {len(errors)} problems")
for e in sorted(set(errors)):
    print("  " + e, file=sys.stderr)
sys.exit(1 if errors else 0)
PY

step "checkov (terraform framework)"
mkdir -p target/ci
# Local modules are followed (no downloads); results as text on the console and JSON for figures.
set +e
"$venv/bin/checkov" -d "$tf_dir" --framework terraform --quiet --compact \
  --skip-download --output cli --output json --output-file-path console,target/ci/checkov-terraform.json
rc=$?
set -e
"$venv/bin/python" - target/ci/checkov-terraform.json <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
reports = data if isinstance(data, list) else [data]
s = {"passed": 0, "failed": 0, "skipped": 0}
for r in reports:
    for k in s:
        s[k] += r.get("summary", {}).get(k, 0)
print(f"checkov figures: passed={s['passed']} failed={s['failed']} skipped={s['skipped']} (skips are inline, with reasons)")
PY
if [ "$rc" -ne 0 ]; then
  echo "FAILED: checkov reported failed checks (fix them, or skip one inline with its reason)" >&2
  exit 1
fi

step "the secrets the Kubernetes manifests read are the ones Terraform creates"
# deploy/k8s's ExternalSecrets name Secrets Manager keys emporium/ENVIRONMENT/<key>; every one
# must be created by modules/secrets, or the pods of a fresh environment never get their Secret.
"$venv/bin/python" - "$tf_dir" deploy/k8s <<'PY'
import pathlib, re, sys

tf, k8s = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
contexts = re.search(r'contexts\s*=\s*\[([^\]]*)\]', (tf / "stack/main.tf").read_text()).group(1)
contexts = re.findall(r'"([a-z]+)"', contexts)
secrets_tf = (tf / "modules/secrets/main.tf").read_text()
block = secrets_tf[secrets_tf.index("descriptions = merge("):secrets_tf.index("# The values Terraform writes")]
created = set(re.findall(r'^\s*"([a-z0-9-]+)"\s*=', block, re.M)) | {f"{c}-database-url" for c in contexts}
if not k8s.is_dir():
    print(f"{k8s} absent: nothing to compare ({len(created)} secrets created)")
    sys.exit(0)
read = {}
for f in sorted(k8s.rglob("*.yaml")):
    for key in re.findall(r'emporium/ENVIRONMENT/([A-Za-z0-9_./-]+)', f.read_text()):
        read.setdefault(key, str(f))
missing = sorted(k for k in read if k not in created)
for k in missing:
    print(f"MISSING: {read[k]} reads emporium/<env>/{k}, which deploy/terraform/modules/secrets does not create", file=sys.stderr)
print(f"{len(read)} keys read by the manifests, {len(created)} created by Terraform, {len(missing)} missing")
sys.exit(1 if missing else 0)
PY

step "shellcheck"
shellcheck .ci/check-terraform.sh "$tf_dir"/scripts/*.sh

step "done"
