#!/usr/bin/env bash
# Build the Dockerfile with buildah from a locally made base, lint it, and run the built
# image's entrypoint as uid 65532: --help, then a real copy against a loopback registry.
set -euo pipefail
cd "$(dirname "$0")/../.."
export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs}
base=localhost/github-org-backup-base:bookworm
image=localhost/github-org-backup:ci
ca=/etc/ssl/certs/ca-certificates.crt

hadolint Dockerfile
bash deploy/image/make-base.sh "$base"
# PyPI may be reached through a TLS-intercepting proxy: trust the machine's CA bundle.
buildah bud --isolation chroot --layers=false -q \
  --build-arg BASE="$base" --build-arg PIP_CERT="$ca" -v "$ca:$ca:ro" -t "$image" . >/dev/null
echo "image size: $(buildah images --format '{{.Size}}' "$image")"

container=$(buildah from "$image")
work=$(mktemp -d)
cleanup() {
  [ -n "${registry_pid:-}" ] && kill "$registry_pid" 2>/dev/null || true
  buildah rm "$container" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
mapfile -t entrypoint < <(buildah inspect --type image --format '{{range .OCIv1.Config.Entrypoint}}{{println .}}{{end}}' "$image" | sed '/^$/d')
user=$(buildah inspect --type image --format '{{.OCIv1.Config.User}}' "$image")
[ "$user" = "65532:65532" ] || { echo "image user is '$user', expected 65532:65532"; exit 1; }
run() { buildah run --isolation chroot --user 65532:65532 "$container" -- "${entrypoint[@]}" "$@"; }

run --help | head -3
# The repos command needs git and git-lfs in the image, usable as 65532.
buildah run --isolation chroot --user 65532:65532 "$container" -- git lfs version

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
buildah push -q --tls-verify=false "$image" "docker://127.0.0.1:$port/src/github-org-backup:ci"

run copy --log-format console "http://127.0.0.1:$port/src/github-org-backup:ci" \
  "http://127.0.0.1:$port/backup/github-org-backup:ci"
src=$(skopeo inspect --tls-verify=false --raw "docker://127.0.0.1:$port/src/github-org-backup:ci" | sha256sum)
dst=$(skopeo inspect --tls-verify=false --raw "docker://127.0.0.1:$port/backup/github-org-backup:ci" | sha256sum)
[ "$src" = "$dst" ] || { echo "digest mismatch: $src vs $dst"; exit 1; }
echo "image check passed: entrypoint ran as 65532:65532 and copied sha256:${dst%% *} byte-exact"
