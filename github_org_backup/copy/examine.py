"""The "already there?" check of one copy spec: what the destination's tag points at, against
the source's digest. An unchanged tag costs the destination one HEAD."""

from __future__ import annotations

from dataclasses import dataclass

from github_org_backup.base.fanout import both
from github_org_backup.model.oci import Descriptor, Manifest
from github_org_backup.model.specs import CopySpec
from github_org_backup.stores.protocol import Store

# A manifest read for the check is kept for the copy only up to this size: images that wait
# for a copy slot hold theirs meanwhile, and a hostile source may claim up to 4 MiB each.
KEEP_MANIFEST_BYTES = 256 * 2**10


@dataclass(frozen=True)
class Examined:
    digest: str  # what the destination's tag must point at: the source's, or its filtered index
    existing: Descriptor | None  # what the destination's tag points at now
    source_digest: str  # the source's own, whose referrers go along
    manifest: Manifest | None = None  # the source manifest, when the check read it

    @property
    def unchanged(self) -> bool:
        return self.existing is not None and self.existing.digest == self.digest


async def examine(spec: CopySpec, source: Store, target: Store) -> Examined:
    """Ask the destination and, unless the spec pins a digest, the source, at the same time:
    one round trip. A pinned spec asks the destination alone."""
    src, dst = spec.source, spec.destination
    manifest: Manifest | None = None
    if src.digest is None:
        # One GET, hashed here, rather than a HEAD whose digest header we would have to trust.
        read, existing = await both(
            source.get_manifest(src.repository.name, src.identifier),
            target.resolve_manifest(dst.repository.name, dst.identifier),
        )
        manifest, digest = read, read.digest
    else:
        digest = src.digest
        existing = await target.resolve_manifest(dst.repository.name, dst.identifier)
    source_digest = digest
    if spec.platforms:
        # The tag holds the filtered index, which exists nowhere else: it is always kept.
        if manifest is None:
            manifest = await source.get_manifest(src.repository.name, digest)
        manifest = manifest.limit_platforms(spec.platforms)
        digest = manifest.digest
    elif manifest is not None and len(manifest.raw) > KEEP_MANIFEST_BYTES:
        manifest = None  # read again, by digest, once a copy slot is free
    return Examined(digest, existing, source_digest, manifest)
