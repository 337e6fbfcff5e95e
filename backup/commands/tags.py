"""Which tags a backup holds: from the registry's catalog, a run's report, or the latest
snapshot when the registry cannot list its repositories (ECR, GAR)."""

from __future__ import annotations

import json
from pathlib import Path

import structlog

from backup.errors import BackupError, InvalidReference, UsageError
from backup.policy import PackageFilter, TagPolicy
from backup.reference import Repository, parse_reference
from backup.snapshots import HISTORY_TAG, SNAPSHOT_REPOSITORY, Snapshots
from backup.store import Store

log = structlog.get_logger("backup.commands")


async def backup_tags(
    store: Store,
    prefix: Repository,
    packages: PackageFilter,
    include_tags: TagPolicy | None,
    report: Path | None,
    *,
    internal: bool = False,
) -> list[tuple[str, str]]:
    """(repository, tag) pairs below ``prefix``: from the store's catalog, a run's report, or
    the latest snapshot. ``internal`` includes the snapshots and history tags."""
    try:
        names = await store.list_repositories()
    except BackupError as exc:
        if report is not None:
            return tags_from_report(report, prefix, packages)
        latest = await Snapshots(store, prefix).latest()
        if latest is None:
            raise UsageError(
                f"cannot list the repositories of {store.registry} ({exc}) and {prefix} has no "
                "snapshot: pass --from-report FILE with the report of the run that wrote it"
            ) from None
        log.info("tags_from_snapshot", snapshot=latest.id, reason="no catalog")
        return [
            (prefix.child(i.repository).name, i.tag)
            for i in latest.images
            if packages.allows(i.repository)
            and (include_tags is None or any(p.fullmatch(i.tag) for p in include_tags.include))
        ]
    found: list[tuple[str, str]] = []
    for name in sorted(names):
        try:
            relative = Repository(prefix.registry, name).relative_to(prefix)
        except InvalidReference:
            continue
        if relative is None or not packages.allows(relative):
            continue
        if not internal and relative.split("/")[0] == SNAPSHOT_REPOSITORY:
            continue
        for tag in await store.list_tags(name):
            if tag == HISTORY_TAG and not internal:
                continue
            if include_tags is None or any(p.fullmatch(tag) for p in include_tags.include):
                found.append((name, tag))
    return found


def tags_from_report(
    report: Path, prefix: Repository, packages: PackageFilter
) -> list[tuple[str, str]]:
    try:
        images = json.loads(report.read_text())["images"]
    except (OSError, ValueError, KeyError) as exc:
        raise UsageError(f"cannot read report {report}: {exc}") from None
    found = []
    for image in images:
        if image.get("status") == "failed":
            continue
        reference = parse_reference(image["destination"])
        relative = reference.repository.relative_to(prefix)
        if relative is not None and packages.allows(relative) and reference.tag:
            found.append((reference.repository.name, reference.tag))
    return found
