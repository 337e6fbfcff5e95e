"""`copy`: a set of copy specs, and with --snapshot-prefix a snapshot of what it wrote."""

from __future__ import annotations

from typing import Any

import structlog

from backup.commands.run import execute, finish
from backup.credentials import CredentialStore
from backup.errors import BackupError
from backup.history import carried_forward, record_run, tagged_images, unvouched_tags
from backup.options import CopyOptions
from backup.reference import Repository, parse_reference
from backup.session import Clients, open_clients
from backup.snapshots import Snapshots

log = structlog.get_logger("backup.commands")


async def run_copy(options: CopyOptions) -> int:
    store = CredentialStore.from_docker_config(explicit=dict(options.credentials))
    async with open_clients(store, options.http) as clients:
        stats, report = await execute(options.specs, clients, options.output, options.run)
        failed = False
        if options.snapshot_prefix and not report["summary"].get("interrupted"):
            failed = await _record_snapshot(clients, options, options.snapshot_prefix, report)
    return finish(options.output, options.run, stats, report, failed=failed)


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
    return False
