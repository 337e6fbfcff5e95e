"""Which tags a backup holds: from the registry's catalog, a run's report, or the latest
snapshot when the registry cannot list its repositories (ECR, GAR)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import structlog

from github_org_backup.base import jsonio
from github_org_backup.base.listing import listing
from github_org_backup.errors import (
    BackupError,
    InvalidReference,
    TLSFailed,
    Unreachable,
    UsageError,
)
from github_org_backup.history.store import Snapshots
from github_org_backup.model.reference import Repository, parse_reference
from github_org_backup.model.reserved import is_reserved, reserved_path, reserved_tag
from github_org_backup.plan.policy import PackageFilter, TagPolicy
from github_org_backup.stores.protocol import Store

log = structlog.get_logger("github_org_backup.commands")


async def backup_tags(
    store: Store,
    prefix: Repository,
    packages: PackageFilter,
    include_tags: TagPolicy | None,
    report: Path | None,
    *,
    internal: bool = False,
    series: Sequence[str] = ("",),
) -> list[tuple[str, str]]:
    """(repository, tag) pairs below ``prefix``: from the store's catalog, a run's report, or
    the latest snapshot of each of ``series`` (the unsharded series by default; a backup made
    in shards keeps one per shard). ``internal`` includes the tool's own names (the snapshots,
    the history tags: everything in its reserved namespace).

    The catalog lists every shard's tags, so with one ``series`` does not narrow what is found.
    """
    try:
        names = await store.list_repositories()
    except BackupError as exc:
        if isinstance(exc, Unreachable | TLSFailed):
            raise  # no answer at all: the snapshots would not answer either
        if report is not None:
            return tags_from_report(report, prefix, packages)
        return await _tags_from_snapshots(store, prefix, series, packages, include_tags, exc)
    if tuple(series) != ("",):
        log.info("shards_not_needed", backup=str(prefix), reason="the catalog lists every shard")
    found: list[tuple[str, str]] = []
    for name in sorted(names):
        try:
            relative = Repository(prefix.registry, name).relative_to(prefix)
        except InvalidReference:
            continue
        if relative is None or not packages.allows(relative):
            continue
        if not internal and reserved_path(relative) is not None:
            continue
        for tag in await store.list_tags(name):
            if not internal and reserved_tag(tag) is not None:
                continue
            if include_tags is None or include_tags.named_by_include(tag):
                found.append((name, tag))
    return found


async def _tags_from_snapshots(
    store: Store,
    prefix: Repository,
    series: Sequence[str],
    packages: PackageFilter,
    include_tags: TagPolicy | None,
    no_catalog: BackupError,
) -> list[tuple[str, str]]:
    """The union of each series' latest snapshot; a series without one is a usage error."""
    found: dict[tuple[str, str], None] = {}
    for name in series:
        latest = await Snapshots(store, prefix, name).latest()
        if latest is None and not name:
            raise UsageError(
                f"cannot list the repositories of {store.registry} ({no_catalog}) and {prefix} "
                "has no snapshot: pass --from-report FILE with the report of the run that wrote "
                "it, or --shard-count N for a backup made in N shards"
            )
        if latest is None:
            # The tags of the other shards alone would pass for the whole backup.
            raise UsageError(
                f"cannot list the repositories of {store.registry} ({no_catalog}) and shard "
                f"series {name} of {prefix} has no snapshot: check the shard count against "
                "the backup's, or pass --from-report FILE with the report of the run that wrote it"
            )
        log.info(
            "tags_from_snapshot",
            snapshot=latest.id,
            reason="no catalog",
            **({"shard": name} if name else {}),
        )
        for image in latest.images:
            if is_reserved(image.repository, image.tag):
                continue  # recorded by a version that let a source take the tool's names
            if packages.allows(image.repository) and (
                include_tags is None or include_tags.named_by_include(image.tag)
            ):
                found[(prefix.child(image.repository).name, image.tag)] = None
    return list(found)


def tags_from_report(
    report: Path, prefix: Repository, packages: PackageFilter
) -> list[tuple[str, str]]:
    try:
        images = jsonio.loads(report.read_text())["images"]
    except (OSError, ValueError, KeyError) as exc:
        raise UsageError(f"cannot read report {report}: {exc}") from None
    found = []
    for image in images:
        if image.get("status") == "failed":
            continue
        reference = parse_reference(image["destination"])
        relative = reference.repository.relative_to(prefix)
        if relative is None or not reference.tag or is_reserved(relative, reference.tag):
            continue
        if packages.allows(relative):
            found.append((reference.repository.name, reference.tag))
    return found


async def nothing_found(store: Store, prefix: Repository, packages: PackageFilter) -> str:
    """Why no tag was found below ``prefix``, naming the repositories that do exist."""
    try:
        names = await store.list_repositories()
    except BackupError:
        names = []
    below = []
    for name in names:
        try:
            relative = Repository(prefix.registry, name).relative_to(prefix)
        except InvalidReference:
            continue
        if relative is not None and reserved_path(relative) is None:
            below.append(relative or "(unnamed)")
    if not below:
        return f"{prefix} holds no image: check --dest (or --from) and that a backup ran there"
    shown = listing(below)
    if packages.include:
        return (
            f"--include-package {' '.join(packages.include)} matched none of the "
            f"{len(below)} repositories of {prefix} ({shown})"
        )
    return f"the selection matched no tag of the {len(below)} repositories of {prefix} ({shown})"
