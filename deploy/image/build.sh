#!/usr/bin/env bash
# The one image build, run by the release workflow and by CI (ci-check.sh): build the
# Dockerfile with buildah, write the CycloneDX SBOM of the image's Python environment, push
# the image and print the digest the registry names it by.
#
#   deploy/image/build.sh REFERENCE OUT_DIR
#
# REFERENCE: registry/name:tag to push to (the local image gets the same name), e.g.
#   ghcr.io/acme/github-org-backup:0.1.0, or a loopback registry's in CI.
# OUT_DIR receives sbom.cdx.json and digest (sha256:..., of the manifest as pushed).
# Environment, all optional:
#   BASE        the Dockerfile's base image (default: the Dockerfile's ARG BASE)
#   PIP_CERT    a CA bundle for pip to trust in the build, mounted read-only (TLS proxies)
#   TLS_VERIFY  false for a registry without TLS (a loopback one); default true
#   CYCLONEDX   the cyclonedx-py command (pip install cyclonedx-bom); default: from PATH
#   REVISION    the source commit, for the org.opencontainers.image.revision label
#   SOURCE_DATE_EPOCH  the SBOM's timestamp (omitted when unset)
# Needs buildah and python3 >= 3.11; run as a normal user it re-runs itself in `buildah
# unshare`, which mounting the image's filesystem needs.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then exec buildah unshare bash "$0" "$@"; fi
[ $# -eq 2 ] || { sed -n '2,19p' "$0" >&2; exit 2; }
ref=$1
mkdir -p "$2"
out=$(cd "$2" && pwd)
cd "$(dirname "$0")/../.."
case "$ref" in
  *@*) echo "REFERENCE takes a tag, not a digest: $ref" >&2; exit 2 ;;
  */*:*) ;;
  *) echo "REFERENCE needs a registry, a name and a tag: $ref" >&2; exit 2 ;;
esac
version=$(python3 deploy/release/check_version.py)

build=(--isolation chroot --layers=false -q --label "org.opencontainers.image.version=$version")
[ -n "${BASE:-}" ] && build+=(--build-arg "BASE=$BASE")
[ -n "${PIP_CERT:-}" ] && build+=(--build-arg "PIP_CERT=$PIP_CERT" -v "$PIP_CERT:$PIP_CERT:ro")
[ -n "${REVISION:-}" ] && build+=(--label "org.opencontainers.image.revision=$REVISION")
buildah bud "${build[@]}" -t "$ref" . >/dev/null
echo "built $ref (github-org-backup $version)"

# The SBOM: cyclonedx-py reads the distributions on an interpreter's sys.path. It gets the
# image's sys.path, asked of the image's own interpreter and rebased onto the mounted root,
# so it lists what the image holds, not what this machine has.
work=$(mktemp -d)
container=$(buildah from "$ref")
cleanup() {
  buildah umount "$container" >/dev/null 2>&1 || true
  buildah rm "$container" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
root=$(buildah mount "$container")
buildah run --isolation chroot "$container" -- /opt/venv/bin/python -c \
  'import json, sys; print(json.dumps(sys.path))' >"$work/image-path.json"
python3 - "$root" "$work/image-path.json" >"$work/path.json" <<'PY'
import json, os, sys
root, listing = sys.argv[1], sys.argv[2]
paths = json.load(open(listing))
json.dump([os.path.join(root, p.lstrip("/")) for p in paths if p], sys.stdout)
PY
printf '#!/bin/sh\ncat "%s"\n' "$work/path.json" >"$work/python"
chmod +x "$work/python"
sbom=(environment --mc-type application --output-reproducible --of JSON -o "$out/sbom.cdx.json")
${CYCLONEDX:-cyclonedx-py} "${sbom[@]}" "$work/python"
echo "sbom: $out/sbom.cdx.json"

buildah push -q --tls-verify="${TLS_VERIFY:-true}" --digestfile "$out/digest" \
  "$ref" "docker://$ref" >/dev/null
digest=$(cat "$out/digest")
echo "image digest: $digest"
echo "pushed: ${ref%:*}@$digest"
