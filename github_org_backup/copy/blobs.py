"""Blobs for one run: each crosses the network at most once per destination registry.

The first repository that needs a blob streams it (source GET straight into destination PUT);
every other repository on that registry mounts it from there. Where a blob went is recorded
per (digest, size), so a descriptor with a wrong size never rides along on a right one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from github_org_backup.base.fanout import shared
from github_org_backup.base.retry import RetryPolicy
from github_org_backup.copy.pace import Paced
from github_org_backup.copy.presence import PRESENT, Probe, check_blob, learn_mounts
from github_org_backup.copy.transfer import transfer_blob
from github_org_backup.model.oci import Descriptor
from github_org_backup.model.reference import Registry, Repository
from github_org_backup.output.report import Stats
from github_org_backup.stores.protocol import Store, UploadSession

log = structlog.get_logger("github_org_backup.copy.engine")

BlobKey = tuple[Registry, str, int]  # (registry, digest, size)


@dataclass(frozen=True)
class Placement:
    """Content as one descriptor names it, at one repository."""

    repository: Repository
    digest: str
    size: int

    @classmethod
    def of(cls, repository: Repository, descriptor: Descriptor) -> Placement:
        return cls(repository, descriptor.digest, descriptor.size)

    @property
    def key(self) -> BlobKey:
        return (self.repository.registry, self.digest, self.size)


class Blobs:
    """Puts blobs at destination repositories; one per run, shared by every image."""

    def __init__(
        self,
        store_for: Callable[[Registry], Store],
        stats: Stats,
        paced: Paced,
        policy: RetryPolicy,
    ) -> None:
        self._store_for = store_for
        self._stats = stats
        self._policy = policy
        self._paced = paced
        self.tasks: dict[Placement, asyncio.Task[None]] = {}
        self._homes: dict[BlobKey, list[str]] = {}
        self._leaders: dict[tuple[Registry, str], asyncio.Future[None]] = {}
        self._probes: dict[Registry, Probe] = {}
        # Bytes streamed but not yet counted in bytes_copied: an image's count once it completes.
        self._uncounted: dict[BlobKey, int] = {}

    def probe(self, registry: Registry) -> Probe:
        """What this run found at ``registry`` so far."""
        return self._probes.setdefault(registry, Probe())

    def take_uncounted(self, key: BlobKey) -> int:
        """The bytes streamed for this blob and not yet counted; counted from now on."""
        return self._uncounted.pop(key, 0)

    async def ensure(self, blob: Descriptor, src: Repository, dst: Repository) -> None:
        await shared(self.tasks, Placement.of(dst, blob), lambda: self._place(blob, src, dst))

    async def _place(self, blob: Descriptor, src: Repository, dst: Repository) -> None:
        # One leader per digest (whatever size is claimed), so that the bytes move once.
        while (leader := self._leaders.get((dst.registry, blob.digest))) is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(leader)
        key = Placement.of(dst, blob).key
        target = self._store_for(dst.registry)
        if homes := self._homes.get(key):
            location = await target.mount_blob(dst.name, blob.digest, from_name=homes[0])
            if location is None:
                self.probe(dst.registry).mounted = True
                self._stats.blobs_mounted += 1
                log.debug(
                    "blob_mounted", digest=blob.digest, dst=str(dst), from_repository=homes[0]
                )
            else:
                await self._stream(blob, src, dst, location)
            homes.append(dst.name)
            return
        # First need for this digest on this registry: every other repository waits for us.
        leader = asyncio.get_running_loop().create_future()
        self._leaders[(dst.registry, blob.digest)] = leader
        try:
            probe = self.probe(dst.registry)
            if probe.eager and not probe.by_mount and not target.registry.layout:
                # The upload opens with the HEAD, within the slot its bytes will use: sessions
                # are never opened faster than transfers can fill them.
                async with self._paced.transfers:
                    session = await check_blob(target, blob, dst, probe, open_upload=True)
                    if session != PRESENT:
                        await self._transfer(blob, src, dst, session)
            else:
                session = await check_blob(target, blob, dst, probe)
                if session != PRESENT:
                    await self._stream(blob, src, dst, session)
            self._homes[key] = [dst.name]
            if session == PRESENT:
                self._stats.blobs_skipped += 1
            elif not target.registry.layout:
                await learn_mounts(target, dst, blob.digest, probe)
        finally:
            del self._leaders[(dst.registry, blob.digest)]
            leader.set_result(None)

    async def _stream(
        self, blob: Descriptor, src: Repository, dst: Repository, session: UploadSession | None
    ) -> None:
        async with self._paced.transfers:
            await self._transfer(blob, src, dst, session)

    async def _transfer(
        self, blob: Descriptor, src: Repository, dst: Repository, session: UploadSession | None
    ) -> None:
        """Stream one blob, in a transfer slot the caller holds."""
        setup_s = await transfer_blob(
            self._store_for(src.registry),
            src.name,
            self._store_for(dst.registry),
            dst.name,
            blob,
            self._stats,
            session,
            self._policy,
        )
        self._paced.transferred(blob.size, setup_s)
        self._stats.blobs_copied += 1
        key = Placement.of(dst, blob).key
        self._uncounted[key] = self._uncounted.get(key, 0) + blob.size
        log.debug("blob_copied", digest=blob.digest, dst=str(dst), size=blob.size)
