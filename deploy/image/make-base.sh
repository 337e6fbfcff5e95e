#!/usr/bin/env bash
# Make a minimal Debian 12 base image with python3, without any registry: debootstrap into a
# directory, then commit it with buildah. Reuses the image if it already exists.
set -euo pipefail
name=${1:-localhost/github-org-backup-base:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if buildah inspect --type image "$name" >/dev/null 2>&1; then
  echo "base image $name exists: reusing it"
  exit 0
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  bookworm "$root" "$mirror" >/dev/null
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
  "$root"/usr/share/man/*
container=$(buildah from scratch)
mountpoint=$(buildah mount "$container")
cp -a "$root"/. "$mountpoint"/
buildah umount "$container" >/dev/null
buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$container"
buildah commit --rm "$container" "$name" >/dev/null
echo "base image $name committed"
