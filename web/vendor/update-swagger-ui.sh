#!/usr/bin/env bash
# Re-vendor the Swagger UI assets served by the offline API docs page.
# Usage: web/vendor/update-swagger-ui.sh [VERSION]   (default: 5.35.0)
# Needs npm (only the npm registry is contacted; nothing is installed).
set -euo pipefail

version="${1:-5.35.0}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest="$here/swagger-ui"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent "swagger-ui-dist@$version" >/dev/null)
tar -xzf "$tmp"/swagger-ui-dist-*.tgz -C "$tmp"
pkg="$tmp/package"

got="$(node -p "require('$pkg/package.json').version" 2>/dev/null \
      || sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$pkg/package.json")"
[ "$got" = "$version" ] || { echo "expected $version, npm gave $got" >&2; exit 1; }

mkdir -p "$dest"
rm -f "$dest"/swagger-ui-bundle.js "$dest"/swagger-ui.css "$dest"/LICENSE "$dest"/NOTICE
cp "$pkg"/swagger-ui-bundle.js "$pkg"/swagger-ui.css "$pkg"/LICENSE "$dest"/
if [ -f "$pkg/NOTICE" ]; then cp "$pkg/NOTICE" "$dest"/; fi
printf '%s\nfrom npm package swagger-ui-dist; update with web/vendor/update-swagger-ui.sh\n' \
  "$version" > "$dest/VERSION"

# The page must work offline: warn if the bundle names a CDN.
if grep -qiE 'unpkg|jsdelivr|cdnjs' "$dest/swagger-ui-bundle.js"; then
  echo "warning: swagger-ui-bundle.js mentions a CDN host" >&2
fi
echo "swagger-ui-dist $version -> $dest"
ls -l "$dest"
