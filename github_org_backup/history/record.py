"""What a run leaves behind in the backup's history: a snapshot, histories, retention, prune.

The backup is not a mirror. A tag the source overwrote or deleted stays in the snapshots
that named it, and each repository's history index keeps those digests reachable from a tag
until retention forgets every snapshot that names them. Only then can ``--prune`` delete a
tag, and only one a forgotten snapshot recorded, never one whose digest a kept snapshot
still names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog

from github_org_backup.errors import BackupError, InvalidReference, NotFound
from github_org_backup.history.snapshots import (
    Snapshot,
    Snapshots,
    TaggedImage,
    moved_tags,
    named_by_another_series,
    new_snapshot,
    select_kept,
)
from github_org_backup.model.oci import IMAGE_MEDIA_TYPES, Descriptor
from github_org_backup.model.reference import Repository, parse_reference
from github_org_backup.model.reserved import HISTORY_TAG, is_reserved
from github_org_backup.stores.protocol import Store

log = structlog.get_logger("github_org_backup.history.record")


@dataclass(frozen=True)
class Retention:
    keep_last: int | None = None
    keep_within: timedelta | None = None

    @property
    def forgets(self) -> bool:
        return self.keep_last is not None or self.keep_within is not None


@dataclass
class RunHistory:
    """What recording a run did, for the report."""

    snapshot: Snapshot
    moved: list[dict[str, str]]
    forgotten: list[str] = field(default_factory=list)
    histories_written: int = 0
    histories_repaired: int = 0
    lost: dict[str, list[str]] = field(default_factory=dict)  # entries a history lost
    pruned: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "snapshot": self.snapshot.id,
            "tags_moved": len(self.moved),
            "snapshots_forgotten": len(self.forgotten),
            "histories_written": self.histories_written,
            "histories_repaired": self.histories_repaired,
            "history_entries_lost": sum(len(d) for d in self.lost.values()),
        }


def tagged_images(images: Iterable[Mapping[str, Any]], prefix: Repository) -> list[TaggedImage]:
    """The tags below ``prefix`` that a run's report shows pointing at a complete image."""
    found = []
    for image in images:
        digest, media_type, size = image.get("digest"), image.get("media_type"), image.get("size")
        if image.get("status") == "failed" or not digest or not media_type:
            continue
        if not isinstance(size, int) or size < 0:
            continue
        try:
            reference = parse_reference(str(image["destination"]), default_tag=None)
        except (InvalidReference, KeyError):
            continue
        relative = reference.repository.relative_to(prefix)
        if not relative or reference.tag is None or is_reserved(relative, reference.tag):
            continue
        found.append(TaggedImage(relative, reference.tag, str(digest), str(media_type), size))
    return found


def unvouched_tags(
    images: Iterable[Mapping[str, Any]], prefix: Repository, vouched: Iterable[TaggedImage]
) -> set[tuple[str, str | None]]:
    """(repository, tag) below ``prefix`` of the report's images that ``vouched`` lacks: a
    failed image, or one whose descriptor the report does not hold whole."""
    seen = {(i.repository, i.tag) for i in vouched}
    found: set[tuple[str, str | None]] = set()
    for image in images:
        try:
            reference = parse_reference(str(image["destination"]), default_tag=None)
        except (InvalidReference, KeyError):
            continue
        relative = reference.repository.relative_to(prefix)
        if relative and (relative, reference.tag) not in seen:
            found.add((relative, reference.tag))
    return found


def carried_forward(
    previous: Snapshot | None, current: Sequence[TaggedImage], keep: Callable[[TaggedImage], bool]
) -> list[TaggedImage]:
    """Entries of the previous snapshot this run could not vouch for, but did not see go.

    A tag whose copy failed, or a package GitHub refused to list this time, keeps what the
    backup already held for it: a run that failed to look is not a deletion at the source.
    """
    if previous is None:
        return []
    seen = {(i.repository, i.tag) for i in current}
    return [
        i
        for i in previous.images
        if (i.repository, i.tag) not in seen and keep(i) and not is_reserved(i.repository, i.tag)
    ]


async def record_run(
    snapshots: Snapshots,
    previous: Snapshot | None,
    source: str,
    images: Sequence[TaggedImage],
    retention: Retention,
) -> RunHistory:
    """Write the run's snapshot and the histories it changes, then apply the retention.

    ``previous`` is the latest snapshot before this run. The histories grow to cover the new
    snapshot before it is saved, and shrink only after the forgotten snapshots are gone, so
    a crash at any point leaves every stored snapshot protected. What only the forgotten
    snapshots named goes on the forgotten-tags list first: it is all ``--prune`` may delete.
    Every run then checks the history tags of the repositories it names, and repairs any the
    tool did not write.
    """
    ids = await snapshots.ids()
    snapshot = new_snapshot(source, [i for i in images if not is_reserved(i.repository, i.tag)])
    kept_ids = select_kept(
        [*ids, snapshot.id], keep_last=retention.keep_last, keep_within=retention.keep_within
    )
    forgotten = [i for i in ids if i not in kept_ids]
    changed = previous is None or previous.tags() != snapshot.tags() or bool(forgotten)
    history = RunHistory(snapshot, moved_tags(previous, snapshot), forgotten)
    existing = [await snapshots.load(i) for i in ids] if changed else []
    examined: set[str] = set()
    if changed:
        history.histories_written = await snapshots.write_histories(
            existing, [*existing, snapshot], examined=examined
        )
    await snapshots.save(snapshot)
    kept = [s for s in existing if s.id in kept_ids] + [snapshot]
    if forgotten:
        await _note_forgotten(snapshots, [s for s in existing if s.id not in kept_ids], kept)
    for identifier in forgotten:
        await snapshots.forget(identifier)
    if forgotten:
        history.histories_written += await snapshots.write_histories(
            [*existing, snapshot], kept, examined=examined
        )
    history.histories_repaired = await _repair_histories(snapshots, snapshot, examined)
    history.lost = dict(snapshots.lost)
    for entry in history.moved:
        log.warning("tag_moved", tag=entry["tag"], was=entry["was"], now=entry["now"])
    return history


def only_forgotten(forgotten: Iterable[Snapshot], kept: Iterable[Snapshot]) -> list[TaggedImage]:
    """The entries of ``forgotten`` whose (repository, tag) no snapshot of ``kept`` names."""
    named = {(i.repository, i.tag) for s in kept for i in s.images}
    return [i for s in forgotten for i in s.images if (i.repository, i.tag) not in named]


async def forgotten_tags(snapshots: Snapshots) -> list[TaggedImage]:
    """The forgotten-tags list; an unreadable one counts as empty (its tags then stay)."""
    try:
        return await snapshots.forgotten_tags()
    except BackupError as exc:
        log.warning("forgotten_tags_unreadable", error=str(exc), backup=str(snapshots.prefix))
        return []


async def _note_forgotten(
    snapshots: Snapshots, forgotten: Sequence[Snapshot], kept: Sequence[Snapshot]
) -> None:
    dropped = only_forgotten(forgotten, kept)
    if dropped:
        await snapshots.save_forgotten_tags([*await forgotten_tags(snapshots), *dropped])


async def _repair_histories(snapshots: Snapshots, latest: Snapshot, examined: set[str]) -> int:
    """Rewrite the history tags (of the repositories ``latest`` names, but those this run
    already wrote) that are missing, foreign, or lack what ``latest`` names."""
    damaged = await snapshots.damaged_histories(latest, skip=examined)
    if not damaged:
        return 0
    kept = [await snapshots.load(i) for i in await snapshots.ids()]
    return await snapshots.write_histories(kept, kept, check=True, only=damaged)


async def kept_snapshots(snapshots: Snapshots, retention: Retention) -> list[Snapshot]:
    """The stored snapshots the retention keeps, oldest first."""
    ids = await snapshots.ids()
    kept = select_kept(ids, keep_last=retention.keep_last, keep_within=retention.keep_within)
    return [await snapshots.load(i) for i in ids if i in kept]


async def _reachable(store: Store, name: str, roots: Iterable[Descriptor], series: str) -> set[str]:
    """Every manifest digest reachable, through indexes, from ``roots`` and from the history
    entries that other snapshot series (other shard counts, the unsharded past) keep.

    On a registry a tag is deleted through its manifest, so a tag that points at a platform
    manifest of a kept index (``1.0-amd64`` beside ``1.0``) would take that child with it.
    """
    pending = list(roots)
    try:
        history = await store.get_manifest(name, HISTORY_TAG)
    except NotFound:
        pass
    else:
        pending += [d for d in history.children() if named_by_another_series(d, series)]
    found: set[str] = set()
    while pending:
        descriptor = pending.pop()
        if descriptor.digest in found:
            continue
        found.add(descriptor.digest)
        if descriptor.media_type in IMAGE_MEDIA_TYPES:
            continue  # no child manifests: no need to read it
        try:
            manifest = await store.get_manifest(name, descriptor.digest)
        except NotFound:
            continue
        pending += manifest.children()
    return found


@dataclass(frozen=True)
class Pruning:
    """What a prune deleted (or would), and the candidates it must still remember."""

    pruned: tuple[str, ...]
    remaining: tuple[TaggedImage, ...]


async def _unknown_tags(store: Store, name: str, known: set[str]) -> dict[str, str]:
    """Digest -> tag for the tags of ``name`` that the tool did not write (an operator's)."""
    found: dict[str, str] = {}
    for tag in await store.list_tags(name):
        if tag in known or is_reserved("", tag):
            continue
        descriptor = await store.resolve_manifest(name, tag)
        if descriptor is not None:
            found.setdefault(descriptor.digest, tag)
    return found


async def prune_unreferenced(
    store: Store,
    prefix: Repository,
    kept: Sequence[Snapshot],
    candidates: Iterable[TaggedImage],
    *,
    dry_run: bool,
    series: str = "",
) -> Pruning:
    """Delete the ``candidates`` (tags only forgotten snapshots named) that no kept snapshot
    names and that still point at the digest the tool wrote.

    Prune deletes only what the tool recorded: a tag no snapshot ever named (an operator's
    own, or one in a repository the tool never wrote) is never a candidate, and one that now
    points elsewhere is someone else's. A tag whose digest a kept snapshot names, under any
    tag, or that a kept index or the history tag reaches, is left alone and remembered: on a
    registry a tag is deleted through its manifest, which would take the kept digest with it.
    """
    if not kept:
        log.error("prune_refused", reason="the backup has no snapshot to decide by")
        raise BackupError(f"nothing pruned: {prefix} has no snapshot yet")
    named = {(i.repository, i.tag) for s in kept for i in s.images}
    pruned: list[str] = []
    remaining: list[TaggedImage] = []
    protected: dict[str, set[str]] = {}
    others: dict[str, dict[str, str]] = {}
    candidates = sorted(set(candidates))
    for candidate in candidates:
        relative, tag = candidate.repository, candidate.tag
        if (relative, tag) in named or is_reserved(relative, tag):
            continue  # a kept snapshot names it again: it is no longer forgotten
        name = prefix.child(relative).name
        found = await store.resolve_manifest(name, tag)
        if found is None:
            continue
        if found.digest != candidate.digest:
            log.warning(
                "prune_skipped",
                repository=relative,
                tag=tag,
                reason="it no longer points at the digest the tool wrote",
            )
            continue
        if relative not in protected:
            roots = [i.descriptor() for s in kept for i in s.images if i.repository == relative]
            protected[relative] = await _reachable(store, name, roots, series)
        if found.digest in protected[relative]:
            log.warning(
                "prune_skipped",
                repository=relative,
                tag=tag,
                reason="its digest is a kept image or part of one",
            )
            remaining.append(candidate)
            continue
        if relative not in others:
            mine = {c.tag for c in candidates if c.repository == relative}
            mine |= {t for r, t in named if r == relative}
            others[relative] = await _unknown_tags(store, name, mine)
        if (other := others[relative].get(found.digest)) is not None:
            # Deleting the manifest would delete the operator's tag with it.
            log.warning(
                "prune_skipped",
                repository=relative,
                tag=tag,
                reason=f"the tag {other!r}, which the tool did not write, names the same digest",
            )
            remaining.append(candidate)
            continue
        if dry_run:
            print(f"prune  {prefix.child(relative)}:{tag}", flush=True)
        else:
            await store.delete_tag(name, tag)
            log.info("tag_pruned", repository=relative, tag=tag)
        pruned.append(f"{relative}:{tag}")
    return Pruning(tuple(pruned), tuple(remaining))
