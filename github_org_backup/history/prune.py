"""Prune: delete the tags only forgotten snapshots named, never one a kept snapshot, a kept
index or another series' history still reaches, nor one an operator's tag shares."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import structlog

from github_org_backup.errors import BackupError, NotFound
from github_org_backup.history.index import named_by_another_series
from github_org_backup.history.model import Snapshot, TaggedImage
from github_org_backup.history.record import RunHistory, forgotten_tags
from github_org_backup.history.store import Snapshots
from github_org_backup.model.oci import IMAGE_MEDIA_TYPES, Descriptor
from github_org_backup.model.reference import Repository
from github_org_backup.model.reserved import HISTORY_TAG, is_reserved
from github_org_backup.stores.protocol import Store

log = structlog.get_logger("github_org_backup.history.record")


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


async def prune_run(
    snapshots: Snapshots,
    history: RunHistory,
    *,
    leave: Callable[[TaggedImage], bool],
    dry_run: bool,
) -> Pruning:
    """Prune after ``history`` was recorded (or, in a dry run, decided): the forgotten-tags
    list against the kept snapshots, but for the entries to ``leave`` for a later run (a
    package that failed this time). The list then keeps what could not be pruned yet."""
    kept = await history.kept_snapshots(snapshots)
    listed = history.ledger if history.ledger is not None else await forgotten_tags(snapshots)
    result = await prune_unreferenced(
        snapshots.store,
        snapshots.prefix,
        kept,
        [i for i in listed if not leave(i)],
        dry_run=dry_run,
        series=snapshots.series,
    )
    remaining = [*result.remaining, *(i for i in listed if leave(i))]
    if not dry_run and sorted(set(remaining)) != sorted(set(listed)):
        await snapshots.save_forgotten_tags(remaining)
    return result
