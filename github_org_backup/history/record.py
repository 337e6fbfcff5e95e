"""What a run leaves behind in the backup's history: a snapshot, histories, retention, prune.

The backup is not a mirror. A tag the source overwrote or deleted stays in the snapshots
that named it, and each repository's history index keeps those digests reachable from a tag
until retention forgets every snapshot that names them. Only then can ``--prune`` delete a
tag, and only one a forgotten snapshot recorded, never one whose digest a kept snapshot
still names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import structlog

from github_org_backup.errors import BackupError
from github_org_backup.history.model import Snapshot, TaggedImage, moved_tags, new_snapshot
from github_org_backup.history.retention import KeepReason, Retention, describe
from github_org_backup.history.store import Snapshots, ledger
from github_org_backup.model.reference import Repository
from github_org_backup.model.reserved import is_reserved
from github_org_backup.model.results import ImageResult, MovedTag
from github_org_backup.model.specs import CopySpec
from github_org_backup.output.report import HistoryOutcome

__all__ = [
    "Retention",
    "RunHistory",
    "carried_forward",
    "forgotten_tags",
    "kept_snapshots",
    "only_forgotten",
    "planned_images",
    "record_results",
    "record_run",
    "tagged_images",
    "unvouched_tags",
]

log = structlog.get_logger("github_org_backup.history.record")


@dataclass
class RunHistory:
    """What recording a run did (or, in a dry run, would do), for the report and for prune."""

    snapshot: Snapshot
    moved: list[MovedTag]
    forgotten: list[str] = field(default_factory=list)
    kept: dict[str, tuple[KeepReason, ...]] = field(default_factory=dict)  # id -> why
    histories_written: int = 0
    histories_repaired: int = 0
    lost: dict[str, list[str]] = field(default_factory=dict)  # entries a history lost
    # The forgotten-tags list as this run left it (or would), when it changed it.
    ledger: list[TaggedImage] | None = None

    def outcome(self) -> HistoryOutcome:
        return HistoryOutcome(
            self.snapshot.id,
            tuple(self.moved),
            len(self.forgotten),
            self.histories_written,
            self.histories_repaired,
            sum(len(d) for d in self.lost.values()),
        )

    async def kept_snapshots(self, snapshots: Snapshots) -> list[Snapshot]:
        """The snapshots the retention keeps, this run's last, oldest first."""
        earlier = sorted(i for i in self.kept if i != self.snapshot.id)
        return [*[await snapshots.load(i) for i in earlier], self.snapshot]


def tagged_images(results: Iterable[ImageResult], prefix: Repository) -> list[TaggedImage]:
    """The tags below ``prefix`` that a run's results show pointing at a complete image."""
    found = []
    for result in results:
        written, destination = result.written(), result.destination
        if written is None:
            continue
        relative = destination.repository.relative_to(prefix)
        if not relative or destination.tag is None or is_reserved(relative, destination.tag):
            continue
        found.append(
            TaggedImage(relative, destination.tag, written.digest, written.media_type, written.size)
        )
    return found


def unvouched_tags(
    results: Iterable[ImageResult], prefix: Repository, vouched: Iterable[TaggedImage]
) -> set[tuple[str, str | None]]:
    """(repository, tag) below ``prefix`` of the results that ``vouched`` lacks: a failed
    image, or one whose descriptor the result does not hold whole."""
    seen = {(i.repository, i.tag) for i in vouched}
    found: set[tuple[str, str | None]] = set()
    for result in results:
        relative = result.destination.repository.relative_to(prefix)
        if relative and (relative, result.destination.tag) not in seen:
            found.add((relative, result.destination.tag))
    return found


def planned_images(specs: Iterable[CopySpec], prefix: Repository) -> list[TaggedImage]:
    """The tags below ``prefix`` a run of ``specs`` would record, as a dry run knows them:
    the source's digest, without the manifest's media type and size."""
    return [
        TaggedImage(relative, spec.destination.tag, spec.source.digest or "", "", 0)
        for spec in specs
        if (relative := spec.destination.repository.relative_to(prefix)) and spec.destination.tag
    ]


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


async def record_results(
    snapshots: Snapshots,
    source: str,
    images: Sequence[TaggedImage],
    retention: Retention,
    *,
    keep: Callable[[TaggedImage], bool],
    unvouched: Iterable[tuple[str, str | None]] = (),
    dry_run: bool = False,
    skip_unchanged: bool = False,
) -> RunHistory:
    """Record ``images`` (what the run vouches for) plus what the latest snapshot held that
    the run did not look at (``keep``) or could not vouch for (``unvouched``); with
    ``skip_unchanged``, a run that holds exactly what the latest snapshot holds adds none."""
    previous = await snapshots.latest()
    doubtful = set(unvouched)
    carried = carried_forward(
        previous, images, lambda i: keep(i) or (i.repository, i.tag) in doubtful
    )
    return await record_run(
        snapshots,
        previous,
        source,
        [*images, *carried],
        retention,
        dry_run=dry_run,
        skip_unchanged=skip_unchanged,
    )


async def record_run(
    snapshots: Snapshots,
    previous: Snapshot | None,
    source: str,
    images: Sequence[TaggedImage],
    retention: Retention,
    *,
    dry_run: bool = False,
    skip_unchanged: bool = False,
) -> RunHistory:
    """Write the run's snapshot and the histories it changes, then apply the retention.

    ``previous`` is the latest snapshot before this run. The histories grow to cover the new
    snapshot before it is saved, and shrink only after the forgotten snapshots are gone, so
    a crash at any point leaves every stored snapshot protected. What only the forgotten
    snapshots named goes on the forgotten-tags list first: it is all ``--prune`` may delete.
    Every run then checks the history tags of the repositories it names, and repairs any the
    tool did not write.

    ``dry_run`` decides all the same (the snapshot, what the retention keeps and why, the
    forgotten-tags list) and writes nothing. With ``skip_unchanged``, a run whose tags,
    digests and descriptors equal ``previous``'s writes no snapshot: ``previous`` stays the
    latest (``snapshot_unchanged``), and the retention and the repair still run.
    """
    ids = await snapshots.ids()
    snapshot = new_snapshot(source, [i for i in images if not is_reserved(i.repository, i.tag)])
    same = skip_unchanged and _holds_the_same(previous, snapshot, ids)
    if same and previous is not None:
        log.info("snapshot_unchanged", backup=str(snapshots.prefix), snapshot=previous.id)
        snapshot = previous
    kept_ids = retention.apply(ids if same else [*ids, snapshot.id])
    forgotten = [i for i in ids if i not in kept_ids]
    changed = previous is None or previous.tags() != snapshot.tags() or bool(forgotten)
    history = RunHistory(snapshot, moved_tags(previous, snapshot), forgotten, kept_ids)
    if retention.forgets:
        log.info(
            "retention_applied",
            backup=str(snapshots.prefix),
            kept=describe(kept_ids),
            forgotten=forgotten,
            dry_run=dry_run,
        )
    existing = [await snapshots.load(i) for i in ids] if changed else []
    after = existing if same else [*existing, snapshot]  # the stored snapshots, this run's in
    examined: set[str] = set()
    if changed and not dry_run and not same:
        history.histories_written = await snapshots.write_histories(
            existing, after, examined=examined
        )
    if not dry_run and not same:
        await snapshots.save(snapshot)
    kept = [s for s in after if s.id in kept_ids]
    if forgotten:
        dropped = [s for s in existing if s.id not in kept_ids]
        history.ledger = await _note_forgotten(snapshots, dropped, kept, dry_run=dry_run)
    if dry_run:
        return history
    for identifier in forgotten:
        await snapshots.forget(identifier)
    if forgotten:
        history.histories_written += await snapshots.write_histories(after, kept, examined=examined)
    history.histories_repaired = await _repair_histories(snapshots, snapshot, examined)
    history.lost = dict(snapshots.lost)
    for entry in history.moved:
        log.warning("tag_moved", tag=entry.tag, was=entry.was, now=entry.now)
    return history


def _holds_the_same(previous: Snapshot | None, fresh: Snapshot, ids: Sequence[str]) -> bool:
    """``fresh`` names the very tags, digests and descriptors the stored ``previous`` does."""
    return (
        previous is not None
        and previous.id in ids
        and sorted(previous.images) == sorted(fresh.images)
    )


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
    snapshots: Snapshots,
    forgotten: Sequence[Snapshot],
    kept: Sequence[Snapshot],
    *,
    dry_run: bool,
) -> list[TaggedImage] | None:
    """Add what only ``forgotten`` named to the forgotten-tags list; the list as it is then,
    or None if nothing was added."""
    dropped = only_forgotten(forgotten, kept)
    if not dropped:
        return None
    entries = [*await forgotten_tags(snapshots), *dropped]
    if not dry_run:
        await snapshots.save_forgotten_tags(entries)
    return ledger(entries)


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
    kept = retention.apply(ids)
    return [await snapshots.load(i) for i in ids if i in kept]
