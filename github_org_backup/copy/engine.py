"""Execute a set of copy specs: blobs, then child manifests, then the tag, byte-exact.

Across the run a blob crosses the network at most once per destination registry: the first
repository that needs it streams it (source GET straight into destination PUT), every other
repository mounts it. A tag is written only after everything it references is in place.

Shared work is keyed by (digest, size), never by digest alone: a descriptor whose size is
wrong fails only the image that carries it, and content already at the destination counts
as present only when its size agrees with the descriptor.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

import structlog

from github_org_backup.base.fanout import ByteBudget, bounded, shared
from github_org_backup.base.limits import (
    DEFAULT_CONCURRENCY,
    DescriptorBudget,
    Limits,
    check_count,
)
from github_org_backup.base.redact import redact_text
from github_org_backup.base.retry import RetryPolicy
from github_org_backup.copy.presence import PRESENT, Probe, check_blob, check_present_size
from github_org_backup.copy.transfer import transfer_blob
from github_org_backup.errors import (
    BackupError,
    lacks_access,
)
from github_org_backup.model.oci import Descriptor, Manifest
from github_org_backup.model.reference import Registry, Repository
from github_org_backup.model.results import ImageResult, Status
from github_org_backup.model.specs import CopySpec
from github_org_backup.output.report import Stats
from github_org_backup.stores.protocol import Store, UploadSession

log = structlog.get_logger("github_org_backup.copy.engine")


@dataclass(frozen=True)
class _Place:
    """Content as one descriptor names it, at one repository."""

    repository: Repository
    digest: str
    size: int

    @classmethod
    def of(cls, repository: Repository, descriptor: Descriptor) -> _Place:
        return cls(repository, descriptor.digest, descriptor.size)


_BlobKey = tuple[Registry, str, int]  # (registry, digest, size)
_Needs = set[_Place]  # the child manifests and blobs one image (or child) needs


class CopyEngine:
    """Copies images between stores. One per run: it remembers what it placed."""

    def __init__(
        self,
        store_for: Callable[[Registry], Store],
        stats: Stats,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        policy: RetryPolicy | None = None,
        limits: Limits | None = None,
    ) -> None:
        self._store_for = store_for
        self._policy = policy or RetryPolicy()
        self._limits = limits or Limits()
        self.stats = stats
        self._images = asyncio.Semaphore(concurrency)
        self._transfers = asyncio.Semaphore(concurrency)
        # Child manifests (and referrers) are read and checked at most this many at once,
        # whatever the number of children an index lists.
        self._manifest_reads = asyncio.Semaphore(concurrency)
        self._fan_out_limit = concurrency
        # Read, a manifest is briefly held twice over: 32 MiB of claimed sizes read at once.
        self._manifest_bytes = ByteBudget(32 * 2**20)
        self._blob_tasks: dict[_Place, asyncio.Task[None]] = {}
        self._manifest_tasks: dict[_Place, asyncio.Task[None]] = {}
        self._blob_homes: dict[_BlobKey, list[str]] = {}
        self._blob_leaders: dict[tuple[Registry, str], asyncio.Future[None]] = {}
        self._probes: dict[Registry, Probe] = {}
        # Bytes streamed but not yet counted in bytes_copied: an image's count once it completes.
        self._uncounted: dict[_BlobKey, int] = {}
        self._child_needs: dict[_Place, _Needs] = {}
        self._in_flight: set[asyncio.Task[ImageResult]] = set()
        self.stopping = False
        self._aborting = ""  # why the images in flight are abandoned, once they are
        self.access_failures = 0  # images failed on credentials, or on a registry gone

    async def run(self, specs: Iterable[CopySpec] | AsyncIterable[CopySpec]) -> list[ImageResult]:
        """Copy every spec; one failure never stops the others. Results keep the input order."""
        tasks: list[asyncio.Task[ImageResult]] = []
        if isinstance(specs, AsyncIterable):
            async for spec in specs:
                if self.stopping:
                    break
                tasks.append(asyncio.create_task(self._copy_image(spec)))
                self.stats.images_total += 1
        else:
            for spec in specs:
                tasks.append(asyncio.create_task(self._copy_image(spec)))
                self.stats.images_total += 1
        return list(await asyncio.gather(*tasks))

    def stop(self) -> None:
        """Start no new image; the ones in flight carry on until they finish or ``abort``."""
        if not self.stopping:
            log.warning("run_stopping", images_in_flight=len(self._in_flight))
        self.stopping = True

    def abort(self, reason: str = "abandoned at the end of the grace period") -> None:
        """Abandon what is still in flight, each image failing with ``reason``. Nothing
        half-done is tagged: tags are written last."""
        self._aborting = reason
        for task in [*self._in_flight, *self._blob_tasks.values(), *self._manifest_tasks.values()]:
            task.cancel()

    # One image

    async def _copy_image(self, spec: CopySpec) -> ImageResult:
        started = time.monotonic()
        bound = log.bind(src=str(spec.source), dst=str(spec.destination))
        async with self._images:
            if self.stopping:
                return self._failed(spec, bound, started, "not started: the run was stopped")
            task = asyncio.current_task()
            assert task is not None
            self._in_flight.add(task)
            deadline = asyncio.timeout(self._limits.image_timeout_s)
            needs: _Needs = set()
            try:
                async with deadline:
                    status, written = await self._copy_tagged(spec, bound, needs)
            except TimeoutError:
                if not deadline.expired():
                    raise
                limit = f"not finished within {self._limits.image_timeout_s:g} s (--image-timeout)"
                return self._failed(spec, bound, started, limit)
            except BackupError as exc:
                self.access_failures += lacks_access(exc)
                return self._failed(spec, bound, started, str(exc))
            except OSError as exc:  # a layout's file system
                return self._failed(spec, bound, started, f"{type(exc).__name__}: {exc}")
            except asyncio.CancelledError:
                if not self._aborting:
                    raise
                return self._failed(spec, bound, started, self._aborting)
            except Exception as exc:  # a bug or an input nobody foresaw: fail this image only
                bound.debug("image_failed_unexpectedly", exc_info=True)
                message = f"unexpected {type(exc).__name__}: {exc} (please report this)"
                return self._failed(spec, bound, started, message)
            finally:
                self._in_flight.discard(task)
        self._count_bytes(needs)
        if status == "copied":
            self.stats.images_copied += 1
        else:
            self.stats.images_skipped += 1
        elapsed = round(time.monotonic() - started, 3)
        bound.info(f"image_{status}", digest=written.digest, duration_s=elapsed)
        return ImageResult(
            spec.source,
            spec.destination,
            written.digest,
            status,
            None,
            elapsed,
            written.media_type,
            written.size,
        )

    def _failed(
        self, spec: CopySpec, bound: structlog.BoundLogger, started: float, message: str
    ) -> ImageResult:
        message = redact_text(message)
        self.stats.images_failed += 1
        bound.error("image_failed", error=message)
        elapsed = round(time.monotonic() - started, 3)
        return ImageResult(
            spec.source, spec.destination, spec.source.digest, "failed", message, elapsed
        )

    def _count_bytes(self, needs: _Needs) -> None:
        """Count in bytes_copied what this run streamed for an image that completed, each
        blob once, whichever image streamed it."""
        stack, seen = list(needs), set()
        while stack:
            if (place := stack.pop()) in seen:
                continue
            seen.add(place)
            key = (place.repository.registry, place.digest, place.size)
            self.stats.bytes_copied += self._uncounted.pop(key, 0)
            stack.extend(self._child_needs.get(place, ()))

    async def _copy_tagged(
        self, spec: CopySpec, bound: structlog.BoundLogger, needs: _Needs
    ) -> tuple[Status, Descriptor]:
        """Copy one image and write its tag; what the destination's tag now points at."""
        src, dst = spec.source, spec.destination
        source = self._store_for(src.repository.registry)
        target = self._store_for(dst.repository.registry)
        manifest: Manifest | None = None
        digest = src.digest
        if digest is None:
            # One GET, hashed here, rather than a HEAD whose digest header we would have to trust.
            manifest = await source.get_manifest(src.repository.name, src.identifier)
            digest = manifest.digest
        existing = await target.resolve_manifest(dst.repository.name, dst.identifier)
        if existing is not None and existing.digest == digest and not spec.platforms:
            return "skipped", existing
        if manifest is None:
            manifest = await source.get_manifest(src.repository.name, digest)
        if spec.platforms:
            manifest = manifest.limit_platforms(spec.platforms)
            if existing is not None and existing.digest == manifest.digest:
                return "skipped", existing
        budget = DescriptorBudget()
        await self._place_content(manifest, src.repository, dst.repository, budget, needs)
        await target.put_manifest(dst.repository.name, dst.tag or manifest.digest, manifest)
        self.stats.manifests_written += 1
        bound.debug("tag_written", digest=manifest.digest)
        await self._copy_referrers(source, digest, src.repository, dst.repository, bound, needs)
        return "copied", manifest.descriptor()

    async def _copy_referrers(
        self,
        source: Store,
        digest: str,
        src: Repository,
        dst: Repository,
        bound: structlog.BoundLogger,
        needs: _Needs,
    ) -> None:
        """Signatures, SBOMs and attestations that name this image (OCI 1.1 ``subject``).

        Copied by digest after the image; a destination with the referrers API indexes them by
        their subject. Sources without the API (GHCR) use fallback tags, which are tags.
        """
        referrers = await source.list_referrers(src.name, digest)
        if referrers:
            check_count(referrers, f"the referrers of {digest}")
            budget = DescriptorBudget()
            await self._fan_out(
                functools.partial(self._ensure_manifest, referrer, src, dst, budget, needs)
                for referrer in referrers
            )
            bound.info("referrers_copied", digest=digest, count=len(referrers))

    async def _place_content(
        self,
        manifest: Manifest,
        src: Repository,
        dst: Repository,
        budget: DescriptorBudget,
        needs: _Needs,
    ) -> None:
        """Put everything ``manifest`` references at ``dst``: child manifests or blobs.

        What the manifest claims is checked against the bounds before any of it moves.
        """
        if manifest.is_index:
            children = list(manifest.children())
            check_count(children, f"index {manifest.digest}")
            budget.spend(len(children), manifest.digest)
            await self._fan_out(
                functools.partial(self._ensure_manifest, child, src, dst, budget, needs)
                for child in children
            )
        else:
            blobs = list(manifest.blobs())
            check_count(blobs, f"manifest {manifest.digest}")
            self._limits.check_sizes([(b.digest, b.size) for b in blobs], manifest.digest)
            await self._fan_out(
                functools.partial(self._ensure_blob, blob, src, dst, needs) for blob in blobs
            )

    # Child manifests, shared between images that reference the same digest

    async def _fan_out(self, starts: Iterable[Callable[[], Coroutine[Any, Any, None]]]) -> None:
        """At most ``concurrency`` at a time: never thousands of tasks at once."""
        await bounded(starts, self._fan_out_limit)

    async def _ensure_manifest(
        self,
        child: Descriptor,
        src: Repository,
        dst: Repository,
        budget: DescriptorBudget,
        needs: _Needs,
    ) -> None:
        needs.add(_Place.of(dst, child))
        await shared(
            self._manifest_tasks,
            _Place.of(dst, child),
            lambda: self._copy_child(child, src, dst, budget),
        )

    async def _copy_child(
        self, child: Descriptor, src: Repository, dst: Repository, budget: DescriptorBudget
    ) -> None:
        target = self._store_for(dst.registry)
        async with self._manifest_reads:
            # A registry accepts a manifest only when all it references is present, so a child
            # that exists is complete: nothing below it needs checking (this is what resumes).
            if (present := await target.resolve_manifest(dst.name, child.digest)) is not None:
                check_present_size(child, present.size, f"manifest {child.digest}", dst)
                return
            source = self._store_for(src.registry)
            async with self._manifest_bytes.hold(child.size):
                manifest = await source.get_manifest(src.name, child.digest, child)
        needs = self._child_needs.setdefault(_Place.of(dst, child), set())
        await self._place_content(manifest, src, dst, budget, needs)
        await target.put_manifest(dst.name, manifest.digest, manifest)
        self.stats.manifests_written += 1

    # Blobs

    async def _ensure_blob(
        self, blob: Descriptor, src: Repository, dst: Repository, needs: _Needs
    ) -> None:
        needs.add(_Place.of(dst, blob))
        await shared(
            self._blob_tasks, _Place.of(dst, blob), lambda: self._place_blob(blob, src, dst)
        )

    async def _place_blob(self, blob: Descriptor, src: Repository, dst: Repository) -> None:
        # One leader per digest (whatever size is claimed), so that the bytes move once;
        # where they went is recorded per (digest, size), so a wrong size never rides along.
        while (leader := self._blob_leaders.get((dst.registry, blob.digest))) is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(leader)
        key = (dst.registry, blob.digest, blob.size)
        target = self._store_for(dst.registry)
        if homes := self._blob_homes.get(key):
            location = await target.mount_blob(dst.name, blob.digest, from_name=homes[0])
            if location is None:
                self._probes.setdefault(dst.registry, Probe()).mounted = True
                self.stats.blobs_mounted += 1
                log.debug(
                    "blob_mounted", digest=blob.digest, dst=str(dst), from_repository=homes[0]
                )
            else:
                await self._stream_blob(blob, src, dst, location)
            homes.append(dst.name)
            return
        # First need for this digest on this registry: every other repository waits for us.
        leader = asyncio.get_running_loop().create_future()
        self._blob_leaders[(dst.registry, blob.digest)] = leader
        try:
            probe = self._probes.setdefault(dst.registry, Probe())
            session = await check_blob(target, blob, dst, probe)
            if session == PRESENT:
                self.stats.blobs_skipped += 1
            else:
                await self._stream_blob(blob, src, dst, session)
            self._blob_homes[key] = [dst.name]
        finally:
            del self._blob_leaders[(dst.registry, blob.digest)]
            leader.set_result(None)

    async def _stream_blob(
        self, blob: Descriptor, src: Repository, dst: Repository, session: UploadSession | None
    ) -> None:
        async with self._transfers:
            await transfer_blob(
                self._store_for(src.registry),
                src.name,
                self._store_for(dst.registry),
                dst.name,
                blob,
                self.stats,
                session,
                self._policy,
            )
        self.stats.blobs_copied += 1
        key = (dst.registry, blob.digest, blob.size)
        self._uncounted[key] = self._uncounted.get(key, 0) + blob.size
        log.debug("blob_copied", digest=blob.digest, dst=str(dst), size=blob.size)
