"""Execute a set of copy specs: blobs, then child manifests, then the tag, byte-exact.

Across the run a blob crosses the network at most once per destination registry (``blobs``).
A tag is written only after everything it references is in place. Whether a tag is unchanged
is checked ahead of the copy slots (``examine``), so that unchanged tags do not wait behind
copies.

Shared work is keyed by (digest, size), never by digest alone: a descriptor whose size is
wrong fails only the image that carries it, and content already at the destination counts
as present only when its size agrees with the descriptor.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterable, Callable, Coroutine, Iterable
from typing import Any

import structlog

from github_org_backup.base.fanout import ByteBudget, Window, bounded, shared
from github_org_backup.base.limits import (
    DEFAULT_CONCURRENCY,
    DescriptorBudget,
    Limits,
    check_count,
)
from github_org_backup.base.redact import redact_text
from github_org_backup.base.retry import RetryPolicy
from github_org_backup.copy.blobs import Blobs, Placement
from github_org_backup.copy.examine import Examined, examine, tagged_manifest
from github_org_backup.copy.pace import Pace, Paced
from github_org_backup.copy.presence import ManifestProbe, check_present_size
from github_org_backup.errors import BackupError, ContentError, NotFound, lacks_access
from github_org_backup.model.oci import Descriptor, Manifest
from github_org_backup.model.reference import Registry, Repository
from github_org_backup.model.results import ImageResult, Status
from github_org_backup.model.specs import CopySpec
from github_org_backup.output.report import Stats
from github_org_backup.stores.protocol import Store

log = structlog.get_logger("github_org_backup.copy.engine")

# Images checked ahead of the copy slots, per slot: enough that a warm run of a few hundred
# tags is one wave, few enough that the manifests they hold meanwhile stay small.
LOOKAHEAD = 4


_Needs = set[Placement]  # the child manifests and blobs one image (or child) needs


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
        ceiling: int | None = None,
    ) -> None:
        """``concurrency`` images and blob transfers in flight at first, raised as the link's
        bandwidth-delay product asks (``pace``) up to ``ceiling`` (default: no higher)."""
        self._store_for = store_for
        self._limits = limits or Limits()
        self.stats = stats
        self._paced = Paced(
            Pace(concurrency, ceiling or concurrency, lambda: stats.bytes_transferred)
        )
        self._window = Window(LOOKAHEAD * concurrency)
        self._blobs = Blobs(store_for, stats, self._paced, policy or RetryPolicy())
        # Child manifests (and referrers) are read and checked at most this many at once,
        # whatever the number of children an index lists.
        self._manifest_reads = asyncio.Semaphore(concurrency)
        self._fan_out_limit = concurrency
        # Read, a manifest is briefly held twice over: 32 MiB of claimed sizes read at once.
        self._manifest_bytes = ByteBudget(32 * 2**20)
        self._manifest_tasks: dict[Placement, asyncio.Task[None]] = {}
        self._child_needs: dict[Placement, _Needs] = {}
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
        for task in [*self._in_flight, *self._blobs.tasks.values(), *self._manifest_tasks.values()]:
            task.cancel()

    # One image

    async def _copy_image(self, spec: CopySpec) -> ImageResult:
        started = time.monotonic()
        bound = log.bind(src=str(spec.source), dst=str(spec.destination))
        task = asyncio.current_task()
        assert task is not None
        needs: _Needs = set()
        status: Status
        copying = False
        not_started = "not started: the run was stopped"
        # One deadline for the image, paused while it waits for a copy slot.
        deadline = asyncio.timeout(self._limits.image_timeout_s)
        # The check runs in a window ahead of the copy slots, so that unchanged tags do not
        # wait behind copies; an image keeps its place in the window until a slot is free.
        async with self._window.hold() as place:
            if self.stopping:
                return self._failed(spec, bound, started, not_started)
            self._in_flight.add(task)
            try:
                async with deadline:
                    examined = await self._examine(spec)
                    if examined.unchanged:
                        assert examined.existing is not None
                        status, written = "skipped", examined.existing
                    else:
                        loop = asyncio.get_running_loop()
                        left = (deadline.when() or loop.time()) - loop.time()
                        deadline.reschedule(None)
                        async with self._paced.images:
                            deadline.reschedule(loop.time() + left)
                            place.leave()
                            if self.stopping:
                                return self._failed(spec, bound, started, not_started)
                            copying = True
                            written = await self._copy_tagged(spec, examined, bound, needs)
                            status = "copied"
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
                return self._failed(
                    spec, bound, started, self._aborting if copying else not_started
                )
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
            self.stats.bytes_copied += self._blobs.take_uncounted(place.key)
            stack.extend(self._child_needs.get(place, ()))

    async def _examine(self, spec: CopySpec) -> Examined:
        target = self._store_for(spec.destination.repository.registry)
        source = self._store_for(spec.source.repository.registry)
        examined = await examine(spec, source, target, self._manifest_reads)
        # A tag there at all, moved or not, says the destination holds this kind of content.
        probe = self._blobs.probe(spec.destination.repository.registry).manifests
        probe.record(present=examined.existing is not None)
        return examined

    async def _copy_tagged(
        self, spec: CopySpec, examined: Examined, bound: structlog.BoundLogger, needs: _Needs
    ) -> Descriptor:
        """Copy one image and write its tag; what the destination's tag now points at."""
        src, dst = spec.source, spec.destination
        source = self._store_for(src.repository.registry)
        target = self._store_for(dst.repository.registry)
        manifest = await tagged_manifest(spec, examined, source)
        if manifest.digest != examined.digest:  # the source changed since the check
            raise ContentError(
                f"{src} changed while the copy waited: {examined.digest} is now "
                f"{manifest.digest}; the next run copies what it then holds"
            )
        budget = DescriptorBudget()
        await self._place_content(manifest, src.repository, dst.repository, budget, needs)
        await target.put_manifest(dst.repository.name, dst.tag or manifest.digest, manifest)
        self.stats.manifests_written += 1
        bound.debug("tag_written", digest=manifest.digest)
        await self._copy_referrers(
            source, examined.source_digest, src.repository, dst.repository, bound, needs
        )
        return manifest.descriptor()

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
        needs.add(Placement.of(dst, child))
        await shared(
            self._manifest_tasks,
            Placement.of(dst, child),
            lambda: self._copy_child(child, src, dst, budget),
        )

    async def _copy_child(
        self, child: Descriptor, src: Repository, dst: Repository, budget: DescriptorBudget
    ) -> None:
        target = self._store_for(dst.registry)
        probe = self._blobs.probe(dst.registry).manifests
        async with self._manifest_reads:
            # A registry accepts a manifest only when all it references is present, so a child
            # that exists is complete: nothing below it needs checking (this is what resumes).
            asked = target.registry.layout or probe.ask()  # a layout's answer is a file's
            if asked and await self._child_present(child, dst, probe):
                return
            source = self._store_for(src.registry)
            try:
                async with self._manifest_bytes.hold(child.size):
                    manifest = await source.get_manifest(src.name, child.digest, child)
            except NotFound:
                # Deleted at the source (an untagged version), yet perhaps kept here.
                if not asked and await self._child_present(child, dst, probe):
                    return
                raise
        needs = self._child_needs.setdefault(Placement.of(dst, child), set())
        await self._place_content(manifest, src, dst, budget, needs)
        await target.put_manifest(dst.name, manifest.digest, manifest)
        self.stats.manifests_written += 1

    async def _child_present(
        self, child: Descriptor, dst: Repository, probe: ManifestProbe
    ) -> bool:
        present = await self._store_for(dst.registry).resolve_manifest(dst.name, child.digest)
        probe.record(present=present is not None)
        if present is not None:
            check_present_size(child, present.size, f"manifest {child.digest}", dst)
        return present is not None

    async def _ensure_blob(
        self, blob: Descriptor, src: Repository, dst: Repository, needs: _Needs
    ) -> None:
        needs.add(Placement.of(dst, blob))
        await self._blobs.ensure(blob, src, dst)
