"""`restore`: put back the state of one snapshot (or, without snapshots, every tag), byte-exact,
below another prefix."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import structlog

from github_org_backup.base.listing import listing
from github_org_backup.commands.run import EXIT_EMPTY, EXIT_OK, execute, finish
from github_org_backup.commands.tags import backup_tags, nothing_found
from github_org_backup.errors import BackupError, UsageError
from github_org_backup.history.model import Snapshot
from github_org_backup.history.store import Snapshots
from github_org_backup.model.reference import Reference, Repository
from github_org_backup.model.reserved import is_reserved
from github_org_backup.model.specs import CopySpec
from github_org_backup.plan.policy import PackageFilter, TagPolicy
from github_org_backup.settings.options import RestoreOptions
from github_org_backup.stores.factory import open_clients
from github_org_backup.stores.protocol import Store
from github_org_backup.stores.registry.credentials import CredentialStore

log = structlog.get_logger("github_org_backup.commands")


async def run_restore(options: RestoreOptions) -> int:
    source, target = options.source, options.target
    credentials = CredentialStore.from_docker_config(explicit=dict(options.credentials))
    async with open_clients(credentials, options.http) as clients:
        store = clients(source.registry)
        chosen = await _chosen_snapshots(
            options, [Snapshots(store, source, series) for series in options.series]
        )
        if chosen:
            specs = _specs_from_snapshots(
                chosen.values(), source, target, options.packages, options.include_tags
            )
            for series, snapshot in chosen.items():
                log.info(
                    "restore_from_snapshot",
                    snapshot=snapshot.id,
                    tags=len(snapshot.images),
                    **({"shard": series} if series else {}),
                )
        else:
            tags = await backup_tags(
                store, source, options.packages, options.include_tags, options.from_report
            )
            specs = _specs_from_tags(tags, source, target)
        if not specs:
            reason = await _nothing_to_restore(options, store, chosen)
            log.warning("nothing_selected", reason=reason, allow_empty=options.allow_empty)
            if options.dry_run:
                print(f"dry run: nothing to restore below {source}; nothing was written")
            return EXIT_OK if options.allow_empty else EXIT_EMPTY
        if options.dry_run:
            _print_plan(specs, chosen)
            return EXIT_OK
        report = await execute(specs, clients, options.output, options.run)
    report = replace(report, restored={series: s.id for series, s in chosen.items()})
    return finish(options.output, options.run, report, failed=False)


async def _nothing_to_restore(
    options: RestoreOptions, store: Store, chosen: dict[str, Snapshot]
) -> str:
    """Why the selection holds no tag, naming what the backup does hold."""
    if not chosen:
        return await nothing_found(store, options.source, options.packages)
    names = sorted({image.repository for s in chosen.values() for image in s.images})
    ids = ", ".join(s.id for s in chosen.values())
    if not names:
        return f"snapshot {ids} of {options.source} names no tag"
    shown = listing(names)
    return (
        f"--include-package and --include-tag matched no tag of snapshot {ids}, which names "
        f"{len(names)} repositories ({shown})"
    )


def _print_plan(specs: list[CopySpec], chosen: dict[str, Snapshot]) -> None:
    """The dry run: each tag it would restore, where from, and one summary line."""
    for spec in specs:
        print(f"restore  {spec.destination}  from {spec.source}", flush=True)
    where = f"snapshot {', '.join(s.id for s in chosen.values())}" if chosen else "the tags"
    print(f"dry run: {len(specs)} tag(s) to restore from {where}; nothing was written", flush=True)


async def _chosen_snapshots(
    options: RestoreOptions, series: list[Snapshots]
) -> dict[str, Snapshot]:
    """Per series: --snapshot ID, the latest at or before --as-of, or the latest.

    Empty when an unsharded backup has no readable snapshot, so that its tags are restored.
    A shard series without a snapshot is an error.
    """
    chosen: dict[str, Snapshot] = {}
    for snapshots in series:
        found = await _chosen_snapshot(options, snapshots)
        if found is not None:
            chosen[snapshots.series] = found
        elif snapshots.series:
            # The registry's tags hold every shard's packages as they stand now: restoring
            # them would be neither this shard nor that time.
            when = f" at or before {options.as_of.isoformat()}" if options.as_of else ""
            raise UsageError(
                f"shard series {snapshots.series} of {snapshots.prefix} has no snapshot{when}: "
                "check the shard count against the backup's (the snapshots command with "
                "--shard-count N lists each shard's series)"
            )
    return chosen


async def _chosen_snapshot(options: RestoreOptions, snapshots: Snapshots) -> Snapshot | None:
    """--snapshot ID, the latest at or before --as-of, or the latest; None if there are none."""
    if options.snapshot:
        return await snapshots.load(options.snapshot)
    if options.as_of:
        found = await snapshots.at_or_before(options.as_of)
        if found is None and not snapshots.series:
            when = options.as_of.isoformat()
            raise UsageError(
                f"no snapshot of {snapshots.prefix} at or before {when} (for a backup made in "
                "shards, give --shard I/N or --shard-count N)"
            )
        return found
    try:
        return await snapshots.latest()
    except BackupError as exc:
        if snapshots.series:
            raise  # a shard's tags alone are not the backup's state
        log.warning("snapshot_unreadable", error=str(exc), fallback="the registry's tags")
        return None


def _specs_from_snapshots(
    snapshots: Iterable[Snapshot],
    source: Repository,
    target: Repository,
    packages: PackageFilter,
    include: TagPolicy | None,
) -> list[CopySpec]:
    """Every tag of the snapshots, from its digest in the backup to the same path below --to.

    Shards back up disjoint packages, so their snapshots never name the same tag.
    """
    specs = []
    for snapshot in snapshots:
        for image in snapshot.images:
            if not packages.allows(image.repository):
                continue
            if include is not None and not include.named_by_include(image.tag):
                continue
            if is_reserved(image.repository, image.tag):
                # An older version may have recorded a source tag in the tool's namespace.
                log.warning("reserved_name_refused", repository=image.repository, tag=image.tag)
                continue
            specs.append(
                CopySpec(
                    Reference(source.child(image.repository), image.tag, image.digest),
                    Reference(target.child(image.repository), image.tag),
                )
            )
    return specs


def _specs_from_tags(
    tags: list[tuple[str, str]], source: Repository, target: Repository
) -> list[CopySpec]:
    specs = []
    for name, tag in tags:
        relative = Repository(source.registry, name).relative_to(source)
        assert relative is not None
        if not relative and not target.name:
            # A plain-tag layout (skopeo, umoci, ...) holds one unnamed repository.
            raise UsageError(
                f"{source} holds images tagged without a repository name ({tag!r}): "
                "give --to HOST/REPOSITORY to restore them as tags of that repository"
            )
        specs.append(
            CopySpec(
                Reference(Repository(source.registry, name), tag),
                Reference(target.child(relative) if relative else target, tag),
            )
        )
    return specs
