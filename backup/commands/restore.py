"""`restore`: put back the state of one snapshot (or, without snapshots, every tag), byte-exact,
below another prefix."""

from __future__ import annotations

import structlog

from backup.commands.run import execute, finish
from backup.commands.tags import backup_tags
from backup.credentials import CredentialStore
from backup.errors import BackupError, UsageError
from backup.options import RestoreOptions
from backup.policy import PackageFilter, TagPolicy
from backup.reference import Reference, Repository
from backup.session import open_clients
from backup.snapshots import Snapshot, Snapshots
from backup.specs import CopySpec

log = structlog.get_logger("backup.commands")


async def run_restore(options: RestoreOptions) -> int:
    source, target = options.source, options.target
    credentials = CredentialStore.from_docker_config(explicit=dict(options.credentials))
    async with open_clients(credentials, options.http) as clients:
        store = clients(source.registry)
        snapshot = await _chosen_snapshot(options, Snapshots(store, source, options.series))
        if snapshot is not None:
            specs = _specs_from_snapshot(
                snapshot, source, target, options.packages, options.include_tags
            )
            log.info("restore_from_snapshot", snapshot=snapshot.id, tags=len(specs))
        else:
            tags = await backup_tags(
                store, source, options.packages, options.include_tags, options.from_report
            )
            specs = _specs_from_tags(tags, source, target)
        if not specs:
            raise UsageError(f"nothing to restore below {source}")
        stats, report = await execute(specs, clients, options.output, options.run)
    if snapshot is not None:
        report["summary"]["snapshot"] = snapshot.id
    return finish(options.output, options.run, stats, report, failed=False)


async def _chosen_snapshot(options: RestoreOptions, snapshots: Snapshots) -> Snapshot | None:
    """--snapshot ID, the latest at or before --as-of, or the latest; None if there are none."""
    if options.snapshot:
        return await snapshots.load(options.snapshot)
    if options.as_of:
        found = await snapshots.at_or_before(options.as_of)
        if found is None:
            when = options.as_of.isoformat()
            raise UsageError(f"no snapshot of {snapshots.prefix} at or before {when}")
        return found
    try:
        return await snapshots.latest()
    except BackupError as exc:
        log.warning("snapshot_unreadable", error=str(exc), fallback="the registry's tags")
        return None


def _specs_from_snapshot(
    snapshot: Snapshot,
    source: Repository,
    target: Repository,
    packages: PackageFilter,
    include: TagPolicy | None,
) -> list[CopySpec]:
    """Every tag of the snapshot, from its digest in the backup to the same path below --to."""
    specs = []
    for image in snapshot.images:
        if not packages.allows(image.repository):
            continue
        if include is not None and not any(p.fullmatch(image.tag) for p in include.include):
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
