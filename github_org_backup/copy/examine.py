"""The "already there?" check of one copy spec: what the destination's tag points at, against
the source's digest. An unchanged tag costs the destination one HEAD."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from github_org_backup.base.fanout import both
from github_org_backup.model.oci import Descriptor, Manifest
from github_org_backup.model.specs import CopySpec
from github_org_backup.stores.protocol import Store

# A manifest read for the check is kept for the copy only up to this size: images that wait
# for a copy slot hold theirs meanwhile, and a hostile source may serve up to 4 MiB each.
KEEP_MANIFEST_BYTES = 64 * 2**10


@dataclass(frozen=True)
class Examined:
    digest: str  # what the destination's tag must point at: the source's, or its filtered index
    existing: Descriptor | None  # what the destination's tag points at now
    source_digest: str  # the source's own, whose referrers go along
    manifest: Manifest | None = None  # what the tag will hold, when the check kept it

    @property
    def unchanged(self) -> bool:
        return self.existing is not None and self.existing.digest == self.digest


async def examine(
    spec: CopySpec, source: Store, target: Store, reads: asyncio.Semaphore
) -> Examined:
    """Ask the destination and, unless the spec pins a digest, the source, at the same time:
    one round trip. A pinned spec asks the destination alone. Source reads (each up to
    4 MiB) go at most ``reads`` at once; the destination's HEADs are not held back."""
    src, dst = spec.source, spec.destination
    manifest: Manifest | None = None
    if src.digest is None:
        read, existing = await both(
            _read(source, src.repository.name, src.identifier, reads),
            target.resolve_manifest(dst.repository.name, dst.identifier),
        )
        manifest, digest = read, read.digest
    else:
        digest = src.digest
        existing = await target.resolve_manifest(dst.repository.name, dst.identifier)
    source_digest = digest
    if spec.platforms:
        # The tag holds the filtered index, which exists nowhere else: its digest decides.
        if manifest is None:
            manifest = await _read(source, src.repository.name, digest, reads)
        manifest = manifest.limit_platforms(spec.platforms)
        digest = manifest.digest
    if manifest is not None and len(manifest.raw) > KEEP_MANIFEST_BYTES:
        manifest = None  # read again, by digest, once a copy slot is free
    return Examined(digest, existing, source_digest, manifest)


async def tagged_manifest(spec: CopySpec, examined: Examined, source: Store) -> Manifest:
    """What the tag will hold: the manifest the check kept, or the source's read again by
    digest (and filtered again: the same filter gives the same bytes)."""
    if examined.manifest is not None:
        return examined.manifest
    manifest = await source.get_manifest(spec.source.repository.name, examined.source_digest)
    if spec.platforms:
        manifest = manifest.limit_platforms(spec.platforms)
    return manifest


async def _read(source: Store, name: str, identifier: str, reads: asyncio.Semaphore) -> Manifest:
    async with reads:
        return await source.get_manifest(name, identifier)
