"""The snapshots of a backup, read and written through its Store.

A snapshot is an OCI artifact in one dedicated repository below the backup's prefix,
``<prefix>/snapshots.github-org-backup``, tagged with its id (a UTC timestamp, sortable as
text). No GitHub owner name contains a dot, so that repository never collides with a package.
It lives in the destination, so a CronJob without a volume keeps it, and a registry without
``/v2/_catalog`` can still be walked through the latest snapshot. Beside the snapshots lies
the forgotten-tags list; in each repository, its history index (history.index).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Collection, Iterable, Mapping
from datetime import datetime
from typing import Any

import structlog

from github_org_backup.base import jsonio
from github_org_backup.errors import (
    BodyTooLarge,
    ContentError,
    InvalidManifest,
    NotFound,
    RegistryError,
    UsageError,
)
from github_org_backup.history.index import histories, is_history, merged_history, surviving
from github_org_backup.history.model import Snapshot, TaggedImage, id_time, is_snapshot_id
from github_org_backup.model.oci import (
    OCI_MANIFEST,
    Descriptor,
    Manifest,
    digest_of,
    parse_manifest,
)
from github_org_backup.model.reference import Repository
from github_org_backup.model.reserved import HISTORY_TAG, SNAPSHOT_REPOSITORY
from github_org_backup.stores.protocol import Store

log = structlog.get_logger("github_org_backup.history.snapshots")

ARTIFACT_TYPE = "application/vnd.github-org-backup.snapshot.v1"
SNAPSHOT_MEDIA_TYPE = "application/vnd.github-org-backup.snapshot.v1+json"
_EMPTY_CONFIG = b"{}"
_EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
# What a history tag the tool did not write may answer: content no version of it writes. A
# transport error is not among them: a history is never replaced for a lost connection.
_UNREADABLE = (ContentError, BodyTooLarge)
_CHECK_CONCURRENCY = 8  # history tags read at once by the every-run check
# Beside the snapshots: what retention forgot and prune may delete. A tag the tool never
# recorded in a snapshot is never on it, so prune never deletes one.
FORGOTTEN_TAG = "forgotten-tags"
FORGOTTEN_ARTIFACT_TYPE = "application/vnd.github-org-backup.forgotten-tags.v1"
FORGOTTEN_MEDIA_TYPE = "application/vnd.github-org-backup.forgotten-tags.v1+json"
FORGOTTEN_MAX = 50_000  # entries (about 10 MB); past it the oldest-sorted are never pruned
_FORGOTTEN_MAX_BYTES = 64 * 1024 * 1024


def _artifact_type(manifest: Manifest) -> str | None:
    try:
        document = jsonio.loads(manifest.raw)
    except ValueError:
        return None
    found = document.get("artifactType") if isinstance(document, dict) else None
    return found if isinstance(found, str) else None


class Snapshots:
    """The snapshots of one backup prefix, read and written through its Store.

    One instance serves one command: it lists the ids once and reads each snapshot once (a
    snapshot never changes under its id), and its own writes keep what it remembers current.
    """

    def __init__(self, store: Store, prefix: Repository, series: str = "") -> None:
        """``series`` names one shard's snapshots (``shard-0-of-4``): shards run in parallel
        over disjoint packages, so each keeps a series of its own."""
        self.store = store
        self.prefix = prefix
        self.series = series
        path = f"{SNAPSHOT_REPOSITORY}/{series}" if series else SNAPSHOT_REPOSITORY
        self.repository = prefix.child(path).name
        self._ids: list[str] | None = None
        self._loaded: dict[str, Snapshot] = {}
        self.lost: dict[str, list[str]] = {}  # repository -> digests its history lost

    def repository_name(self, relative: str) -> str:
        return self.prefix.child(relative).name

    async def ids(self) -> list[str]:
        """Every snapshot id, oldest first."""
        if self._ids is None:
            tags = await self.store.list_tags(self.repository)
            self._ids = sorted(t for t in tags if is_snapshot_id(t))
        return list(self._ids)

    async def load(self, identifier: str) -> Snapshot:
        if identifier not in self._loaded:
            self._loaded[identifier] = await self._read(identifier)
        return self._loaded[identifier]

    async def _read(self, identifier: str) -> Snapshot:
        try:
            manifest = await self.store.get_manifest(self.repository, identifier)
        except NotFound:
            raise UsageError(f"snapshot {identifier} not found in {self.prefix}") from None
        if not manifest.layers:
            raise InvalidManifest(f"snapshot {identifier} has no content")
        snapshot = Snapshot.from_bytes(
            await self._read_layer(manifest.layers[0], f"snapshot {identifier}")
        )
        if snapshot.id != identifier:
            raise InvalidManifest(f"snapshot tagged {identifier} names itself {snapshot.id}")
        return snapshot

    async def _read_layer(self, layer: Descriptor, what: str) -> bytes:
        chunks_read: list[bytes] = []
        size = 0
        async with self.store.read_blob(self.repository, layer.digest) as chunks:
            async for chunk in chunks:
                size += len(chunk)
                if size > layer.size:
                    break
                chunks_read.append(chunk)
        data = b"".join(chunks_read)
        if len(data) != layer.size or size != layer.size or digest_of(data) != layer.digest:
            raise InvalidManifest(f"{what} does not match its digest")
        return data

    async def all(self) -> AsyncIterator[Snapshot]:
        for identifier in await self.ids():
            yield await self.load(identifier)

    async def latest(self) -> Snapshot | None:
        ids = await self.ids()
        return await self.load(ids[-1]) if ids else None

    async def at_or_before(self, moment: datetime) -> Snapshot | None:
        found = [i for i in await self.ids() if id_time(i) <= moment]
        return await self.load(found[-1]) if found else None

    async def _put_blob(self, data: bytes, media_type: str) -> Descriptor:
        descriptor = Descriptor(media_type, digest_of(data), len(data))
        if await self.store.blob_size(self.repository, descriptor.digest) is None:

            async def chunks() -> AsyncIterator[bytes]:
                yield data

            await self.store.write_blob(self.repository, descriptor, chunks(), None)
        return descriptor

    async def _put_artifact(
        self,
        tag: str,
        artifact_type: str,
        media_type: str,
        data: bytes,
        annotations: Mapping[str, str] | None = None,
        title: str | None = None,
    ) -> None:
        """An OCI artifact (empty config, one layer) tagged ``tag`` in the snapshots repository."""
        config = await self._put_blob(_EMPTY_CONFIG, _EMPTY_MEDIA_TYPE)
        content = await self._put_blob(data, media_type)
        layer: dict[str, Any] = {
            "mediaType": content.media_type,
            "digest": content.digest,
            "size": content.size,
        }
        if title is not None:
            layer["annotations"] = {"org.opencontainers.image.title": title}
        document: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": config.media_type, "digest": config.digest, "size": 2},
            "layers": [layer],
        }
        if annotations:
            document["annotations"] = dict(annotations)
        manifest = parse_manifest(json.dumps(document, indent=1).encode(), OCI_MANIFEST)
        await self.store.put_manifest(self.repository, tag, manifest)

    async def save(self, snapshot: Snapshot) -> None:
        """Write the snapshot as an OCI artifact tagged with its id."""
        annotations = {
            "org.opencontainers.image.created": snapshot.summary()["time"],
            "org.opencontainers.image.version": snapshot.tool_version,
        }
        await self._put_artifact(
            snapshot.id,
            ARTIFACT_TYPE,
            SNAPSHOT_MEDIA_TYPE,
            snapshot.to_bytes(),
            annotations,
            f"{snapshot.id}.json",
        )
        self._loaded[snapshot.id] = snapshot
        if self._ids is not None and snapshot.id not in self._ids:
            self._ids = sorted([*self._ids, snapshot.id])
        log.info(
            "snapshot_written",
            snapshot=snapshot.id,
            backup=str(self.prefix),
            tags=len(snapshot.images),
        )

    async def forget(self, identifier: str) -> None:
        await self.store.delete_tag(self.repository, identifier)
        self._loaded.pop(identifier, None)
        if self._ids is not None and identifier in self._ids:
            self._ids.remove(identifier)
        log.info("snapshot_forgotten", snapshot=identifier, backup=str(self.prefix))

    async def write_histories(
        self,
        before: Iterable[Snapshot],
        after: Iterable[Snapshot],
        *,
        check: bool = False,
        only: Collection[str] | None = None,
        examined: set[str] | None = None,
    ) -> int:
        """Point each repository's history tag at every digest the kept snapshots name there.

        Only histories that differ between the ``before`` and ``after`` sets of kept snapshots
        are written, so an unchanged repository costs no request; ``check`` also compares
        each one with what the store holds (one HEAD each) and repairs it (``only``: just
        these repositories). Returns how many were written; ``examined`` gathers the
        repositories whose stored history was compared.

        Entries another series names (other shards, another shard count, the unsharded
        past) are kept: each entry records the series that name it, and a series drops only
        its own. A manifest under the history tag that the tool did not write is replaced,
        never merged, and never deleted (on a registry that would delete its digest).
        """
        old, new = histories(before, self.series), histories(after, self.series)
        written = 0
        for relative in sorted(old.keys() | new.keys()):
            if only is not None and relative not in only:
                continue
            index = new.get(relative)
            name = self.repository_name(relative)
            unchanged = (
                index is not None and relative in old and old[relative].digest == index.digest
            )
            if unchanged and not check:
                continue
            if examined is not None:
                examined.add(relative)
            present = await self.store.resolve_manifest(name, HISTORY_TAG)
            if present is not None and index is not None and present.digest == index.digest:
                continue
            foreign = False
            if present is not None:
                try:
                    stored = await self.store.get_manifest(name, present.digest)
                except NotFound:
                    pass
                except _UNREADABLE:
                    foreign = True
                else:
                    foreign = not is_history(stored)
                    if not foreign:
                        named_before = (
                            {d.digest for d in old[relative].children()}
                            if relative in old
                            else set()
                        )
                        index = merged_history(index, stored, self.series, named_before)
            if index is None:
                if present is not None and not foreign:
                    await self.store.delete_tag(name, HISTORY_TAG)
                elif present is not None:
                    log.warning("history_foreign", repository=relative, digest=present.digest)
                continue
            if present is not None and present.digest == index.digest:
                continue
            index = await self._put_history(relative, index)
            written += 1
            if check or foreign:
                reason = "missing" if present is None else "differs from the kept snapshots"
                log.warning(
                    "history_repaired",
                    repository=relative,
                    was=present.digest if present else None,
                    now=index.digest,
                    reason="not a history the tool wrote" if foreign else reason,
                )
        return written

    async def _put_history(self, relative: str, index: Manifest) -> Manifest:
        """Write a history; if the store refuses it because entries are gone (collected while
        the history tag was not the tool's), write the entries still present and say which
        were lost: what remains is protected again, and the run fails."""
        name = self.repository_name(relative)
        try:
            await self.store.put_manifest(name, HISTORY_TAG, index)
            return index
        except RegistryError as exc:
            if exc.status != 400:
                raise
            refused = exc
        present = [d for d in index.children() if await self.store.resolve_manifest(name, d.digest)]
        lost = sorted({d.digest for d in index.children()} - {d.digest for d in present})
        if not lost or not present:
            raise refused
        remaining = surviving(present)
        await self.store.put_manifest(name, HISTORY_TAG, remaining)
        self.lost[relative] = lost
        log.error(
            "history_entries_lost",
            repository=relative,
            digests=lost[:10],
            lost=len(lost),
            hint="these images are gone from the backup: copy them again from another copy, "
            "or let retention forget the snapshots that name them",
        )
        return remaining

    async def damaged_histories(self, latest: Snapshot, skip: Collection[str] = ()) -> list[str]:
        """The repositories ``latest`` names (but ``skip``) whose history tag is missing, is
        not a history the tool wrote, or lacks a digest ``latest`` names: one GET each."""
        wanted: dict[str, set[str]] = {}
        for image in latest.images:
            if image.repository not in skip:
                wanted.setdefault(image.repository, set()).add(image.digest)
        gate = asyncio.Semaphore(_CHECK_CONCURRENCY)

        async def damaged(relative: str) -> bool:
            async with gate:
                try:
                    stored = await self.store.get_manifest(
                        self.repository_name(relative), HISTORY_TAG
                    )
                except (NotFound, *_UNREADABLE):
                    return True
            named = {d.digest for d in stored.children()}
            return not is_history(stored) or not wanted[relative] <= named

        order = sorted(wanted)
        found = await asyncio.gather(*(damaged(r) for r in order))
        return [r for r, bad in zip(order, found, strict=True) if bad]

    # The forgotten-tags ledger

    async def forgotten_tags(self) -> list[TaggedImage]:
        """Tags that only forgotten snapshots named and prune has not settled yet."""
        try:
            manifest = await self.store.get_manifest(self.repository, FORGOTTEN_TAG)
        except NotFound:
            return []
        if _artifact_type(manifest) != FORGOTTEN_ARTIFACT_TYPE or not manifest.layers:
            raise InvalidManifest(f"{self.repository}:{FORGOTTEN_TAG} is not a forgotten-tags list")
        layer = manifest.layers[0]
        if layer.size > _FORGOTTEN_MAX_BYTES:
            raise InvalidManifest(
                f"{self.repository}:{FORGOTTEN_TAG} claims {layer.size} bytes, more than "
                f"{_FORGOTTEN_MAX_BYTES}: delete that tag (prune then keeps what it listed)"
            )
        data = await self._read_layer(layer, f"{self.repository}:{FORGOTTEN_TAG}")
        try:
            entries = jsonio.loads(data)["images"]
            return [TaggedImage.from_json(obj) for obj in entries]
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidManifest(
                f"{self.repository}:{FORGOTTEN_TAG} is not readable: {exc}"
            ) from None

    async def save_forgotten_tags(self, entries: Iterable[TaggedImage]) -> None:
        unique = ledger(entries)
        if len(set(entries)) > len(unique):
            log.warning(
                "forgotten_tags_capped",
                dropped=len(set(entries)) - len(unique),
                reason="prune will not delete the dropped tags; run --prune more often",
            )
        data = json.dumps({"images": [i.to_json() for i in unique]}, indent=0).encode()
        await self._put_artifact(FORGOTTEN_TAG, FORGOTTEN_ARTIFACT_TYPE, FORGOTTEN_MEDIA_TYPE, data)


def ledger(entries: Iterable[TaggedImage]) -> list[TaggedImage]:
    """What the forgotten-tags list holds once ``entries`` are saved: each once, sorted,
    at most FORGOTTEN_MAX (the last of that order)."""
    return sorted(set(entries))[-FORGOTTEN_MAX:]
