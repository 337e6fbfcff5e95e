"""`copy`: a set of copy specs, and with --snapshot-prefix a snapshot of what it wrote."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import structlog

from github_org_backup.commands.run import execute, finish
from github_org_backup.errors import BackupError
from github_org_backup.history.record import (
    carried_forward,
    record_run,
    tagged_images,
    unvouched_tags,
)
from github_org_backup.history.snapshots import Snapshots
from github_org_backup.model.reference import Repository, parse_reference
from github_org_backup.model.reserved import refuse, reserved_destination
from github_org_backup.model.specs import CopySpec
from github_org_backup.output.report import ImageResult
from github_org_backup.settings.options import CopyOptions
from github_org_backup.stores.factory import Clients, open_clients
from github_org_backup.stores.registry.credentials import CredentialStore

log = structlog.get_logger("github_org_backup.commands")


async def run_copy(options: CopyOptions) -> int:
    store = CredentialStore.from_docker_config(explicit=dict(options.credentials))
    allowed, refused = _refuse_reserved(options.specs)
    async with open_clients(store, options.http) as clients:
        stats, report = await execute(allowed, clients, options.output, options.run)
        if refused:
            stats.images_failed += len(refused)
            stats.images_total += len(refused)
            report["summary"]["images_failed"] = stats.images_failed
            report["images"] += [asdict(r) for r in refused]
        failed = False
        if options.snapshot_prefix and not report["summary"].get("interrupted"):
            failed = await _record_snapshot(clients, options, options.snapshot_prefix, report)
    return finish(options.output, options.run, stats, report, failed=failed)


def _refuse_reserved(specs: Sequence[CopySpec]) -> tuple[list[CopySpec], list[ImageResult]]:
    """Specs whose destination lies in the tool's own namespace (a history tag, a snapshots
    repository) fail alone: each is logged and reported as a failed image."""
    allowed: list[CopySpec] = []
    refused: list[ImageResult] = []
    for spec in specs:
        reason = reserved_destination(spec.destination)
        if reason is None:
            allowed.append(spec)
            continue
        refuse(spec.destination, reason)
        refused.append(
            ImageResult(
                str(spec.source), str(spec.destination), None, "failed", f"refused: {reason}"
            )
        )
    return allowed, refused


async def _record_snapshot(
    clients: Clients, options: CopyOptions, prefix: Repository, report: dict[str, Any]
) -> bool:
    """A snapshot of the tags this run wrote below the prefix; True if it could not be."""
    images = tagged_images(report["images"], prefix)
    unvouched = unvouched_tags(report["images"], prefix, images)
    sources = sorted(
        {str(parse_reference(i["source"]).repository.registry) for i in report["images"]}
    )
    try:
        snapshots = Snapshots(clients(prefix.registry), prefix)
        previous = await snapshots.latest()
        images += carried_forward(previous, images, lambda i: (i.repository, i.tag) in unvouched)
        history = await record_run(
            snapshots, previous, ",".join(sources) or "copy", images, options.retention
        )
    except BackupError as exc:
        log.error("history_failed", error=str(exc), backup=str(prefix))
        report["summary"]["history_error"] = str(exc)
        return True
    report["summary"] |= history.summary()
    report["moved_tags"] = history.moved
    return bool(history.lost)
