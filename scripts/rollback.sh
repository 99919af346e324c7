#!/usr/bin/env bash
# Rolls an environment back to the images it ran before the last scripts/deploy.sh: for every
# Deployment of the overlay that carries the annotation emporium.io/previous-image (written by
# deploy.sh before it changed the image), `kubectl rollout undo`, then waits for the rollout and
# checks that the previous image is the one running. Canary copies (label track=canary) are
# deleted. Safe to re-run: a Deployment already running its previous image is left alone, so a
# second run does not undo the undo.
#
#   ENVIRONMENT      required  dev | staging | prod
#   KUBE_CONTEXT     optional  kubectl context (default: the current one)
#   DEPLOYMENTS      optional  names to roll back (default: every Deployment of the overlay)
#   ROLLOUT_TIMEOUT  default   600 (seconds per Deployment)
set -euo pipefail
SCRIPT_NAME=rollback.sh
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=scripts/lib/common.sh
source "$here/lib/common.sh"

require ENVIRONMENT "$RE_ENVIRONMENT" 'prod'
optional KUBE_CONTEXT "" "$RE_KUBE_CONTEXT" 'my-eks-cluster'
optional DEPLOYMENTS "" '^[a-z0-9 -]*$' "'gateway catalog'"
optional ROLLOUT_TIMEOUT 600 "$RE_UINT" '600'
overlay="$root/deploy/k8s/overlays/$ENVIRONMENT"
[ -f "$overlay/kustomization.yaml" ] || die "$overlay/kustomization.yaml not found"
need_cmd kubectl python3
PY=$(yaml_python) || exit 1

kc=(kubectl)
[ -n "$KUBE_CONTEXT" ] && kc+=(--context "$KUBE_CONTEXT")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

kubectl kustomize "$overlay" > "$work/rendered.yaml" || die "kubectl kustomize $overlay failed"
"$PY" "$here/lib/manifests.py" split "$work/rendered.yaml" "$work" rollback 1
mapfile -t deployments < "$work/deployments.txt"
"${kc[@]}" version --request-timeout=15s >/dev/null 2>&1 || die "the cluster does not answer (kubectl ${KUBE_CONTEXT:+--context $KUBE_CONTEXT} version)"

# Canary copies first: they carry the new image and take traffic.
while read -r ns; do
  "${kc[@]}" -n "$ns" delete deployment -l track=canary --ignore-not-found >/dev/null
done < <(cut -d' ' -f1 "$work/deployments.txt" | sort -u)

undone=() failed=0
for d in "${deployments[@]}"; do
  read -r ns name <<<"$d"
  if [ -n "$DEPLOYMENTS" ] && [[ " $DEPLOYMENTS " != *" $name "* ]]; then
    continue
  fi
  if ! "${kc[@]}" -n "$ns" get deployment "$name" >/dev/null 2>&1; then
    log "$ns/$name does not exist: nothing to roll back"
    continue
  fi
  previous=$("${kc[@]}" -n "$ns" get deployment "$name" -o jsonpath='{.metadata.annotations.emporium\.io/previous-image}')
  current=$("${kc[@]}" -n "$ns" get deployment "$name" -o jsonpath='{.spec.template.spec.containers[*].image}')
  if [ -z "$previous" ]; then
    log "$ns/$name: no previous image recorded by deploy.sh: left as is (by hand: kubectl -n $ns rollout undo deployment/$name)"
    continue
  fi
  if [ "$current" = "$previous" ]; then
    log "$ns/$name already runs its previous image"
    continue
  fi
  log "$ns/$name: $current -> $previous"
  "${kc[@]}" -n "$ns" rollout undo "deployment/$name" >/dev/null
  undone+=("$d")
done
for d in "${undone[@]}"; do
  read -r ns name <<<"$d"
  if ! "${kc[@]}" -n "$ns" rollout status "deployment/$name" --timeout="${ROLLOUT_TIMEOUT}s"; then
    log "$ns/$name did not finish rolling back within ${ROLLOUT_TIMEOUT}s"
    failed=1
    continue
  fi
  previous=$("${kc[@]}" -n "$ns" get deployment "$name" -o jsonpath='{.metadata.annotations.emporium\.io/previous-image}')
  current=$("${kc[@]}" -n "$ns" get deployment "$name" -o jsonpath='{.spec.template.spec.containers[*].image}')
  if [ "$current" != "$previous" ]; then
    log "$ns/$name rolled back to $current, but $previous was recorded: set it by hand (kubectl -n $ns set image deployment/$name ...)"
    failed=1
  fi
done
[ "$failed" = 0 ] || die "rollback of $ENVIRONMENT incomplete"
log "rollback of $ENVIRONMENT done: ${#undone[@]} deployments rolled back"
