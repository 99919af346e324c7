#!/usr/bin/env bash
# Builds the one Emporium image (deploy/docker/Dockerfile; every context runs from it with
# `serve --service <name>`) with docker buildx, and optionally pushes it.
#
#   IMAGE_REPO    required  ghcr.io/acme/emporium  or  123456789012.dkr.ecr.eu-west-1.amazonaws.com/emporium
#   IMAGE_TAG     required  the git commit, e.g. 3f2a9c1 (tags are never moved: see below)
#   OUTPUT        default   push   push: multi-arch build pushed to IMAGE_REPO, digest printed
#                                  load: one platform (the host's) loaded into the local engine
#                                        as IMAGE_REPO:IMAGE_TAG, for Trivy before pushing
#                                  oci:  multi-arch OCI archive in target/image/emporium.oci.tar
#   PLATFORMS     default   linux/amd64,linux/arm64 (ignored by load)
#   BUILD_CACHE   default   none   gha (GitHub Actions cache) | registry (<IMAGE_REPO>:buildcache) | none
#   DIGEST_FILE   default   target/image/digest (push: the pushed image as repo@sha256:...)
#   AWS_REGION    for an ECR repository: the script logs in with `aws ecr get-login-password`
#
# Safe to re-run: pushing a tag that already exists is skipped when it was built from the same
# commit (its org.opencontainers.image.revision label) and refused otherwise, so a tag always
# names one build. Without a Docker engine (these dev machines) it stops before doing anything.
set -euo pipefail
SCRIPT_NAME=build-images.sh
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=scripts/lib/common.sh
source "$here/lib/common.sh"

require IMAGE_REPO '^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._/-][a-z0-9]+)*)+$' 'ghcr.io/acme/emporium'
require IMAGE_TAG '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$' "\$(git rev-parse --short=12 HEAD)"
optional OUTPUT push '^(push|load|oci)$' 'load'
optional PLATFORMS linux/amd64,linux/arm64 '^linux/(amd64|arm64)(,linux/(amd64|arm64))*$' 'linux/amd64,linux/arm64'
optional BUILD_CACHE none '^(gha|registry|none)$' 'gha'
optional DIGEST_FILE "$root/target/image/digest" '^[^[:space:]]+$' 'target/image/digest'
ecr=false
if [[ $IMAGE_REPO =~ ^[0-9]{12}\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com/ ]]; then
  ecr=true
  optional AWS_REGION "${BASH_REMATCH[1]}" '^[a-z]{2}(-[a-z]+)+-[0-9]$' 'eu-west-1'
fi
dockerfile="$root/deploy/docker/Dockerfile"
[ -f "$dockerfile" ] || die "$dockerfile not found"
need_cmd docker git
docker buildx version >/dev/null 2>&1 || die "docker buildx is not available (install the buildx plugin)"
docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info): build on a machine or CI runner with one"

image="$IMAGE_REPO:$IMAGE_TAG"
revision=$(git -C "$root" rev-parse HEAD)
if [ -n "$(git -C "$root" status --porcelain --untracked-files=no)" ]; then
  [ "$OUTPUT" = push ] && die "the work tree has uncommitted changes: a pushed image must be a commit (commit or stash them)"
  revision="$revision-dirty"
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)

if $ecr && [ "$OUTPUT" = push ]; then
  need_cmd aws
  aws ecr get-login-password --region "$AWS_REGION" | docker login --username AWS --password-stdin "${IMAGE_REPO%%/*}" >/dev/null
fi

if [ "$OUTPUT" = push ] && docker buildx imagetools inspect "$image" >/dev/null 2>&1; then
  existing=$(docker buildx imagetools inspect "$image" --format '{{ json .Image }}' 2>/dev/null \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); d=next(iter(d.values())) if "config" not in d else d; print(d["config"]["Labels"].get("org.opencontainers.image.revision",""))' 2>/dev/null || true)
  if [ "$existing" = "$revision" ]; then
    digest=$(docker buildx imagetools inspect "$image" --format '{{ .Manifest.Digest }}')
    mkdir -p "$(dirname "$DIGEST_FILE")"
    echo "$IMAGE_REPO@$digest" > "$DIGEST_FILE"
    log "$image already pushed from $revision: nothing to do ($IMAGE_REPO@$digest)"
    echo "$IMAGE_REPO@$digest"
    exit 0
  fi
  die "$image already exists, built from '${existing:-unknown}', not $revision: tags are immutable, choose another IMAGE_TAG"
fi

args=(
  --file "$dockerfile"
  --label "org.opencontainers.image.revision=$revision"
  --label "org.opencontainers.image.version=$version"
  --label "org.opencontainers.image.created=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  --label "org.opencontainers.image.source=${GITHUB_SERVER_URL:-https://github.com}/${GITHUB_REPOSITORY:-emporium/emporium}"
  --tag "$image"
)
case $BUILD_CACHE in
  gha) args+=(--cache-from "type=gha,scope=emporium" --cache-to "type=gha,scope=emporium,mode=max") ;;
  registry) args+=(--cache-from "type=registry,ref=$IMAGE_REPO:buildcache" --cache-to "type=registry,ref=$IMAGE_REPO:buildcache,mode=max") ;;
  none) ;;
esac
mkdir -p "$root/target/image" "$(dirname "$DIGEST_FILE")"
case $OUTPUT in
  push)
    args+=(--platform "$PLATFORMS" --push --provenance=mode=max --sbom=true --metadata-file "$root/target/image/metadata.json")
    ;;
  load)
    args+=(--load)
    ;;
  oci)
    args+=(--platform "$PLATFORMS" --output "type=oci,dest=$root/target/image/emporium.oci.tar")
    ;;
esac
platforms=$PLATFORMS
[ "$OUTPUT" = load ] && platforms="the host's platform"
log "building $image for $platforms (output: $OUTPUT)"
docker buildx build "${args[@]}" "$root"

if [ "$OUTPUT" = push ]; then
  digest=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["containerimage.digest"])' "$root/target/image/metadata.json")
  echo "$IMAGE_REPO@$digest" > "$DIGEST_FILE"
  log "pushed $image = $IMAGE_REPO@$digest"
  echo "$IMAGE_REPO@$digest"
fi
