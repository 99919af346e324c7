#!/usr/bin/env bash
# Deploys one image of Emporium to an environment with kustomize (deploy/k8s/overlays/<env>):
#
#   1. render the overlay with the image pinned (nothing in the repository is edited), split it,
#      and dry-run every object on the API server: a bad manifest stops here, before any change;
#   2. migrations: each migration Job runs once per image (named <job>-<hash of the image>) and must
#      complete before a Deployment changes (a failed migration changes nothing else);
#   3. canary (STRATEGY=canary, the default for prod): a <deployment>-canary copy of every
#      Deployment with the new image takes a share of the traffic; after CANARY_SECONDS the smoke
#      test and the error-rate SLO (Prometheus) judge it; failing, the canaries are deleted and the
#      stable pods were never touched;
#   4. rollout: the previous image is recorded on each Deployment (annotation
#      emporium.io/previous-image), everything is applied, and every rollout must finish within
#      ROLLOUT_TIMEOUT; then the smoke test and the SLO once more. Any failure here runs
#      scripts/rollback.sh (`kubectl rollout undo` of every Deployment this run changed).
#
# Safe to re-run: an applied manifest is unchanged by a second apply, a completed migration Job
# is not run again, and the previous image is only recorded when the image changes.
#
#   ENVIRONMENT      required  dev | staging | prod
#   IMAGE            required  ghcr.io/acme/emporium@sha256:<64 hex> (prod: a digest, not a tag)
#   KUBE_CONTEXT     optional  kubectl context (default: the current one)
#   STRATEGY         default   canary for prod, rolling otherwise
#   BASE_URL         the public URL for the smoke test: required for canary, optional otherwise
#   PROMETHEUS_URL   required for canary (the SLO gate), optional otherwise
#   ERROR_RATE_SLO   default 0.01;  CANARY_REPLICAS default 1;  CANARY_SECONDS default 300
#   SETTLE_SECONDS   default 60: after the rollout, before the SLO is asked again
#   ROLLOUT_TIMEOUT  default 600 (seconds, per rollout and per migration)
#   EMPORIUM_IMAGE_NAME  default: the one image name in the overlay ending in "emporium"
#   RENDER_OUT       optional  a directory to keep the pinned manifests in (the pipeline's record)
#   DRY_RUN          render: render and split only, no cluster needed (prints the plan)
#                    server: also dry-run on the API server; unset: deploy
set -euo pipefail
SCRIPT_NAME=deploy.sh
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=scripts/lib/common.sh
source "$here/lib/common.sh"

require ENVIRONMENT "$RE_ENVIRONMENT" 'staging'
if [ "$ENVIRONMENT" = prod ]; then
  require IMAGE "$RE_IMAGE_DIGEST" 'ghcr.io/acme/emporium@sha256:<digest printed by scripts/build-images.sh>   # prod takes digests only'
fi
require IMAGE "$RE_IMAGE" 'ghcr.io/acme/emporium:<git sha>   # or ...@sha256:<digest>'
optional KUBE_CONTEXT "" "$RE_KUBE_CONTEXT" 'my-eks-cluster'
default_strategy=rolling
[ "$ENVIRONMENT" = prod ] && default_strategy=canary
optional STRATEGY "$default_strategy" '^(rolling|canary)$' 'canary'
optional ROLLOUT_TIMEOUT 600 "$RE_UINT" '600'
optional CANARY_REPLICAS 1 '^[1-9][0-9]*$' '1'
optional CANARY_SECONDS 300 "$RE_UINT" '300'
optional SETTLE_SECONDS 60 "$RE_UINT" '60'
optional ERROR_RATE_SLO 0.01 '^(0(\.[0-9]+)?|1(\.0+)?)$' '0.01'
optional DRY_RUN "" '^(render|server)?$' 'render'
optional RENDER_OUT "" '^[^[:space:]]+$' 'target/manifests/staging'
if [ "$STRATEGY" = canary ] && [ -z "$DRY_RUN" ]; then
  require BASE_URL "$RE_URL" 'https://shop.example.com'
  require PROMETHEUS_URL "$RE_URL" 'http://prometheus-operated.monitoring:9090'
else
  [ -z "${BASE_URL-}" ] || require BASE_URL "$RE_URL" 'https://staging.shop.example.com'
  [ -z "${PROMETHEUS_URL-}" ] || require PROMETHEUS_URL "$RE_URL" 'http://prometheus-operated.monitoring:9090'
fi
overlay="$root/deploy/k8s/overlays/$ENVIRONMENT"
[ -f "$overlay/kustomization.yaml" ] || die "$overlay/kustomization.yaml not found"
need_cmd kubectl python3 sha256sum
PY=$(yaml_python) || exit 1

kc=(kubectl)
[ -n "$KUBE_CONTEXT" ] && kc+=(--context "$KUBE_CONTEXT")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1. Render with the image pinned, through a throw-away kustomization over the overlay.
kubectl kustomize "$overlay" > "$work/plain.yaml" || die "kubectl kustomize $overlay failed"
if [ -z "${EMPORIUM_IMAGE_NAME-}" ]; then
  mapfile -t names < <("$PY" "$here/lib/manifests.py" images "$work/plain.yaml" | grep -E '(^|/)emporium$' || true)
  [ "${#names[@]}" = 1 ] || usage_error EMPORIUM_IMAGE_NAME "could not be inferred: the overlay has ${#names[@]} image names ending in 'emporium' (${names[*]:-none})." "export EMPORIUM_IMAGE_NAME=<the image name used in deploy/k8s/base>"
  EMPORIUM_IMAGE_NAME=${names[0]}
fi
if [[ $IMAGE == *@sha256:* ]]; then
  new_name=${IMAGE%@*}
  pin="  digest: ${IMAGE#*@}"
else
  new_name=${IMAGE%:*}
  pin="  newTag: ${IMAGE##*:}"
fi
mkdir "$work/k"
cp "$work/plain.yaml" "$work/k/plain.yaml"
cat > "$work/k/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - plain.yaml
images:
- name: $EMPORIUM_IMAGE_NAME
  newName: $new_name
$pin
EOF
kubectl kustomize "$work/k" > "$work/rendered.yaml" || die "rendering $overlay with the image pinned failed"
grep -qF "image: $IMAGE" "$work/rendered.yaml" || die "the rendered manifests do not use $IMAGE (is $EMPORIUM_IMAGE_NAME the overlay's image name?)"
suffix=$(printf '%s' "$IMAGE" | sha256sum | cut -c1-10)
"$PY" "$here/lib/manifests.py" split "$work/rendered.yaml" "$work" "$suffix" "$CANARY_REPLICAS" "$IMAGE"
mapfile -t deployments < "$work/deployments.txt"
mapfile -t app_deployments < "$work/app-deployments.txt"
mapfile -t jobs < "$work/jobs.txt"
[ "${#app_deployments[@]}" -gt 0 ] || die "the $ENVIRONMENT overlay renders no Deployment running $IMAGE"
namespace=$(cut -d' ' -f1 "$work/app-deployments.txt" | sort | uniq -c | sort -rn | awk 'NR==1 {print $2}')
log "plan for $ENVIRONMENT ($namespace): image $IMAGE, strategy $STRATEGY, ${#jobs[@]} migration jobs, ${#app_deployments[@]} of ${#deployments[@]} deployments run the image"
if [ -n "$RENDER_OUT" ]; then
  mkdir -p "$RENDER_OUT"
  cp "$work/rendered.yaml" "$work/jobs.yaml" "$work/main.yaml" "$work/canary.yaml" "$RENDER_OUT/"
  log "pinned manifests written to $RENDER_OUT"
fi
if [ "$DRY_RUN" = render ]; then
  printf '  job %s\n' "${jobs[@]}" >&2
  printf '  deployment %s\n' "${app_deployments[@]}" >&2
  exit 0
fi

"${kc[@]}" version --request-timeout=15s >/dev/null 2>&1 || die "the cluster does not answer (kubectl ${KUBE_CONTEXT:+--context $KUBE_CONTEXT} version)"
# A first deployment: a dry run of namespaced objects needs their Namespace, and an empty
# Namespace changes nothing that runs.
if [ -z "$DRY_RUN" ] && grep -q '^kind: Namespace' "$work/namespaces.yaml"; then
  "${kc[@]}" apply -f "$work/namespaces.yaml" >/dev/null
fi
"${kc[@]}" apply --dry-run=server -f "$work/main.yaml" >/dev/null || die "the API server refuses the manifests (dry run): nothing was changed"
# New Jobs only: an existing one of this image is immutable and is judged below.
for j in "${jobs[@]}"; do
  read -r ns name <<<"$j"
  "${kc[@]}" -n "$ns" get job "$name" >/dev/null 2>&1 && continue
  "${kc[@]}" apply --dry-run=server -f "$work/job-$name.yaml" >/dev/null || die "the API server refuses Job $name (dry run): nothing was changed"
done
log "server-side dry run: every object accepted"
[ "$DRY_RUN" = server ] && exit 0

# 2. Migrations, once per image; the namespaces and config they need go first.
"$PY" - "$work/main.yaml" > "$work/prereq.yaml" <<'PY'
import sys, yaml
keep = {"Namespace", "ServiceAccount", "ConfigMap", "Secret", "ExternalSecret", "SecretStore", "NetworkPolicy", "Role", "RoleBinding"}
print(yaml.safe_dump_all([d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d.get("kind") in keep]))
PY
[ -s "$work/prereq.yaml" ] && "${kc[@]}" apply -f "$work/prereq.yaml" >/dev/null
for j in "${jobs[@]}"; do
  read -r ns name <<<"$j"
  state=$("${kc[@]}" -n "$ns" get job "$name" -o jsonpath='{.status.succeeded}/{.status.failed}' 2>/dev/null || echo absent)
  if [[ $state == [1-9]* ]]; then
    log "migration $name already completed for this image"
    continue
  fi
  if [ "$state" != absent ]; then
    "${kc[@]}" -n "$ns" delete job "$name" --wait=true >/dev/null
  fi
  "${kc[@]}" apply -f "$work/job-$name.yaml" >/dev/null
  log "migration $name started"
done
for j in "${jobs[@]}"; do
  read -r ns name <<<"$j"
  deadline=$((SECONDS + ROLLOUT_TIMEOUT))
  while :; do
    complete=$("${kc[@]}" -n "$ns" get job "$name" -o jsonpath='{.status.conditions[?(@.type=="Complete")].status}')
    failed=$("${kc[@]}" -n "$ns" get job "$name" -o jsonpath='{.status.conditions[?(@.type=="Failed")].status}')
    [ "$complete" = True ] && break
    if [ "$failed" = True ] || [ "$SECONDS" -ge "$deadline" ]; then
      "${kc[@]}" -n "$ns" logs "job/$name" --tail=40 >&2 || true
      die "migration $name failed or timed out: no Deployment was changed"
    fi
    sleep 5
  done
  log "migration $name completed"
done

canaries_down() {
  [ "$STRATEGY" = canary ] || return 0
  "${kc[@]}" delete -f "$work/canary.yaml" --ignore-not-found --wait=false >/dev/null || true
}
judge() { # judge POD_REGEX -- the smoke test, then the error-rate SLO
  if [ -n "${BASE_URL-}" ]; then
    BASE_URL=$BASE_URL bash "$here/smoke-test.sh" || return 1
  fi
  if [ -n "${PROMETHEUS_URL-}" ]; then
    NAMESPACE=$namespace POD_REGEX=$1 ERROR_RATE_SLO=$ERROR_RATE_SLO bash "$here/check-error-rate.sh" || return 1
  fi
}

# 3. Canary.
if [ "$STRATEGY" = canary ]; then
  "${kc[@]}" apply -f "$work/canary.yaml" >/dev/null
  for d in "${app_deployments[@]}"; do
    read -r ns name <<<"$d"
    if ! "${kc[@]}" -n "$ns" rollout status "deployment/${name:0:56}-canary" --timeout="${ROLLOUT_TIMEOUT}s"; then
      canaries_down
      die "canary ${name}-canary did not become ready: canaries removed, production untouched"
    fi
  done
  log "canaries ready; judging them for ${CANARY_SECONDS}s"
  sleep "$CANARY_SECONDS"
  if ! judge '.+-canary-.+'; then
    canaries_down
    die "the canary failed its smoke test or the error-rate SLO: canaries removed, production untouched"
  fi
  log "canary passed"
fi

# 4. Rollout, recording what to roll back to.
for d in "${app_deployments[@]}"; do
  read -r ns name <<<"$d"
  current=$("${kc[@]}" -n "$ns" get deployment "$name" -o jsonpath='{.spec.template.spec.containers[*].image}' 2>/dev/null || true)
  if [ -n "$current" ] && [[ " $current " != *" $IMAGE "* ]]; then
    "${kc[@]}" -n "$ns" annotate --overwrite deployment "$name" "emporium.io/previous-image=$current" >/dev/null
  fi
done
"${kc[@]}" apply -f "$work/main.yaml" >/dev/null
rollback() {
  log "rolling back $ENVIRONMENT: $1"
  ENVIRONMENT=$ENVIRONMENT KUBE_CONTEXT=$KUBE_CONTEXT bash "$here/rollback.sh" || log "rollback.sh failed too: act by hand (docs/deploy.md, Rollback)"
  canaries_down
  die "$1 (rolled back)"
}
for d in "${deployments[@]}"; do
  read -r ns name <<<"$d"
  "${kc[@]}" -n "$ns" rollout status "deployment/$name" --timeout="${ROLLOUT_TIMEOUT}s" \
    || rollback "deployment/$name did not finish its rollout within ${ROLLOUT_TIMEOUT}s"
done
canaries_down
if [ -n "${BASE_URL-}${PROMETHEUS_URL-}" ]; then
  [ -n "${PROMETHEUS_URL-}" ] && sleep "$SETTLE_SECONDS"
  judge '.+' || rollback "the release failed its smoke test or the error-rate SLO after the rollout"
fi
log "deployed $IMAGE to $ENVIRONMENT"
