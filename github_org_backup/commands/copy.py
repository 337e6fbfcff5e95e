"""`copy`: a set of copy specs, and with --snapshot-prefix a snapshot of what it wrote."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from github_org_backup.commands.run import execute, finish
from github_org_backup.errors import BackupError
from github_org_backup.history.record import record_results, tagged_images, unvouched_tags
from github_org_backup.history.store import Snapshots
from github_org_backup.model.reference import Repository
from github_org_backup.model.reserved import refuse, reserved_destination
from github_org_backup.model.results import ImageResult
from github_org_backup.model.specs import CopySpec
from github_org_backup.output.report import RunReport
from github_org_backup.settings.options import CopyOptions
from github_org_backup.stores.factory import Clients, open_clients
from github_org_backup.stores.registry.credentials import CredentialStore

log = structlog.get_logger("github_org_backup.commands")


async def run_copy(options: CopyOptions) -> int:
    store = CredentialStore.from_docker_config(explicit=dict(options.credentials))
    allowed, refused = _refuse_reserved(options.specs)
    async with open_clients(store, options.http) as clients:
        report = await execute(allowed, clients, options.output, options.run)
        report = report.with_refused(tuple(refused))
        failed = False
        if options.snapshot_prefix and not report.interrupted:
            report = await _record_snapshot(clients, options, options.snapshot_prefix, report)
            failed = report.history_error is not None or _lost(report)
    return finish(options.output, options.run, report, failed=failed)


def _lost(report: RunReport) -> bool:
    """The backup lacks images its snapshots name."""
    return report.history is not None and report.history.history_entries_lost > 0


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
            ImageResult(spec.source, spec.destination, None, "failed", f"refused: {reason}")
        )
    return allowed, refused


async def _record_snapshot(
    clients: Clients, options: CopyOptions, prefix: Repository, report: RunReport
) -> RunReport:
    """The report with a snapshot of the tags this run wrote below the prefix, or with why
    it could not be recorded."""
    images = tagged_images(report.images, prefix)
    unvouched = unvouched_tags(report.images, prefix, images)
    sources = sorted({str(i.source.repository.registry) for i in report.images})
    try:
        history = await record_results(
            Snapshots(clients(prefix.registry), prefix),
            ",".join(sources) or "copy",
            images,
            options.retention,
            keep=lambda _image: False,
            unvouched=unvouched,
            skip_unchanged=True,  # a rerun over the same tags adds no identical snapshot
        )
    except BackupError as exc:
        log.error("history_failed", error=str(exc), backup=str(prefix))
        return report.failed_history(str(exc))
    return report.with_history(history.outcome())
