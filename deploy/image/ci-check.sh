#!/usr/bin/env bash
# CI's image check: lint the Dockerfile, run the release's own build (build.sh) as far as it
# goes without publishing (build, SBOM, push to a loopback registry, digest), check the SBOM
# and the digest, then run the built image's entrypoint as uid 65532: --help, git-lfs, and a
# real copy of the image itself against that registry.
set -euo pipefail
cd "$(dirname "$0")/../.."
export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs}
base=localhost/github-org-backup-base:bookworm
ca=/etc/ssl/certs/ca-certificates.crt
work=$(mktemp -d)
cleanup() {
  [ -n "${registry_pid:-}" ] && kill "$registry_pid" 2>/dev/null || true
  [ -n "${container:-}" ] && buildah rm "$container" >/dev/null 2>&1 || true
  [ -n "${image:-}" ] && buildah rmi "$image" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

hadolint Dockerfile
bash deploy/image/make-base.sh "$base"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/config.yml" <<YAML
version: "0.1"
storage: {filesystem: {rootdirectory: $work/data}}
http: {addr: "127.0.0.1:$port"}
log: {level: error, accesslog: {disabled: true}}
YAML
docker-registry serve "$work/config.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done

image=127.0.0.1:$port/src/github-org-backup:ci
# PyPI may be reached through a TLS-intercepting proxy: trust the machine's CA bundle.
BASE=$base PIP_CERT=$ca TLS_VERIFY=false REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown) \
  bash deploy/image/build.sh "$image" "$work/out" | tee "$work/build.log"
echo "image size: $(buildah images --format '{{.Size}}' "$image")"

# The printed digest is the pushed manifest's, and the SBOM lists the image's packages.
digest=$(sed -n 's/^image digest: //p' "$work/build.log")
pushed=sha256:$(skopeo inspect --tls-verify=false --raw "docker://$image" | sha256sum | cut -d' ' -f1)
[ "$digest" = "$pushed" ] || { echo "build.sh printed $digest, the registry holds $pushed"; exit 1; }
version=$(python3 deploy/release/check_version.py)
python3 deploy/image/check_sbom.py "$work/out/sbom.cdx.json" "github-org-backup=$version" aiohttp

container=$(buildah from "$image")
mapfile -t entrypoint < <(buildah inspect --type image --format '{{range .OCIv1.Config.Entrypoint}}{{println .}}{{end}}' "$image" | sed '/^$/d')
user=$(buildah inspect --type image --format '{{.OCIv1.Config.User}}' "$image")
[ "$user" = "65532:65532" ] || { echo "image user is '$user', expected 65532:65532"; exit 1; }
run() { buildah run --isolation chroot --user 65532:65532 "$container" -- "${entrypoint[@]}" "$@"; }

run --help | head -3
# The repos command needs git and git-lfs in the image, usable as 65532.
buildah run --isolation chroot --user 65532:65532 "$container" -- git lfs version

run copy --log-format console "http://$image" "http://127.0.0.1:$port/backup/github-org-backup:ci"
dst=sha256:$(skopeo inspect --tls-verify=false --raw "docker://127.0.0.1:$port/backup/github-org-backup:ci" | sha256sum | cut -d' ' -f1)
[ "$pushed" = "$dst" ] || { echo "digest mismatch: $pushed vs $dst"; exit 1; }
echo "image check passed: entrypoint ran as 65532:65532 and copied $dst byte-exact"
