"""`registry`: discover an owner's packages on GitHub, copy what the policy keeps, and record
the run's snapshot (with retention and prune) in the backup.

``--dry-run`` takes the same path to the history as a real run: the snapshot the run would
write (the tags its plan holds, plus what it carries forward), the retention over it and the
prune, all decided alike; only the writes are skipped, and what prune would delete is printed.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING, Literal

import structlog

from github_org_backup.commands.run import EXIT_EMPTY, EXIT_FAILED, EXIT_OK, execute, finish
from github_org_backup.errors import BackupError
from github_org_backup.history.model import TaggedImage
from github_org_backup.history.prune import prune_run
from github_org_backup.history.record import (
    planned_images,
    record_results,
    tagged_images,
    unvouched_tags,
)
from github_org_backup.history.store import Snapshots
from github_org_backup.output.report import Counts, RunReport
from github_org_backup.plan.discovery import Discovery
from github_org_backup.settings.command_flags import DEFAULT_DEST
from github_org_backup.settings.config import RegistryConfig
from github_org_backup.settings.options import RegistryOptions
from github_org_backup.stores.factory import Clients, open_clients
from github_org_backup.stores.protocol import Store
from github_org_backup.stores.registry.credentials import CredentialStore

if TYPE_CHECKING:
    from github_org_backup.github.packages import GitHubPackages

log = structlog.get_logger("github_org_backup.commands")

_NO_RETENTION = (
    "--prune deletes only the tags that --keep-last or --keep-within forgot; without them "
    "every snapshot is kept and nothing is pruned"
)


async def run_registry(options: RegistryOptions) -> int:
    # PyGithub is heavy: only this command needs it
    from github_org_backup.github.packages import GitHubPackages

    config, api = options.config, options.github
    github = GitHubPackages(
        config.owner, config.token, config.api_url, retries=api.retries, limits=api.limits
    )
    credentials = CredentialStore.from_docker_config(explicit=config.credentials())
    log.info(
        "backup_started",
        owner=str(config.owner),
        dest=str(config.destination),
        shard=f"{config.shard.index}/{config.shard.count}" if config.shard else None,
        dry_run=options.dry_run or options.emit_specs,
    )
    if not options.dest_given:
        log.info(
            "default_destination",
            dest=DEFAULT_DEST,
            path=config.destination.registry.path,
            hint="give --dest (or BACKUP_DEST) to back up into a registry or another layout",
        )
    try:
        # One session for the whole run: every store learns its registry's auth once.
        async with open_clients(credentials, options.http) as clients:
            if options.dry_run or options.emit_specs:
                return await _plan_only(options, clients, github)
            return await _back_up(options, clients, github)
    finally:
        github.close()


async def _back_up(options: RegistryOptions, clients: Clients, github: GitHubPackages) -> int:
    config = options.config
    snapshots = _snapshots(clients(config.destination.registry), config)
    if options.discovery_cache:  # --no-discovery-cache: list everything
        await _discovery_cache(snapshots, config, github, save=False)
    discovery = Discovery(github, config)
    report = await execute(
        discovery.specs(), clients, options.output, options.run, on_stop=discovery.stop
    )
    report = replace(report, discovery=discovery.outcome(), packages=tuple(discovery.results))
    if not report.interrupted:
        await _discovery_cache(snapshots, config, github, save=True)
    fatal = discovery.fatal_error()
    if fatal is not None and not report.interrupted:
        finish(options.output, options.run, report, failed=True, doomed=True)  # the report
        raise fatal
    failed = not discovery.complete or discovery.failed_packages > 0
    empty = _empty(options, discovery)
    if not report.interrupted and (not empty or await _first_of_series(snapshots)):
        images = tagged_images(report.images, config.destination)
        unvouched = unvouched_tags(report.images, config.destination, images)
        report, history_failed = await _record_history(
            options, snapshots, discovery, report, images, unvouched, dry_run=False
        )
        failed = history_failed or failed
    elif empty:
        log.warning("snapshot_skipped", reason="nothing selected: the last snapshot stays latest")
    return finish(
        options.output, options.run, report, failed, empty=bool(empty) and not options.allow_empty
    )


async def _first_of_series(snapshots: Snapshots) -> bool:
    """Whether the series has no snapshot yet: then an empty run records one, which shadows
    nothing and tells restore and verify that this shard (or owner) held nothing."""
    try:
        return not await snapshots.ids()
    except BackupError:
        return False


def _empty(options: RegistryOptions, discovery: Discovery) -> str | None:
    """Why the run selected nothing, logged as a warning; None when it selected something."""
    reason = discovery.emptiness()
    if reason is not None:
        log.warning("nothing_selected", reason=reason, allow_empty=options.allow_empty)
    return reason


def _snapshots(store: Store, config: RegistryConfig) -> Snapshots:
    return Snapshots(store, config.destination, config.shard.series if config.shard else "")


async def _discovery_cache(
    snapshots: Snapshots, config: RegistryConfig, github: GitHubPackages, *, save: bool
) -> None:
    """Load the last run's discovery cache from beside the snapshots, or save this run's.

    Never fatal: without a cache, discovery lists everything.
    """
    from github_org_backup.github.cache import load_cache, save_cache

    store, repository = snapshots.store, snapshots.repository
    try:
        if not save:
            github.use_cache(await load_cache(store, repository, config.owner, config.api_url))
        elif (learned := github.learned_cache()) is not None:
            await save_cache(store, repository, learned)
    except BackupError as exc:
        log.warning("discovery_cache_failed", error=str(exc), saving=save)


async def _plan_only(options: RegistryOptions, clients: Clients, github: GitHubPackages) -> int:
    discovery = Discovery(github, options.config)
    async for result, plan in discovery.found():
        if plan is None:
            if options.dry_run:
                print(f"{result.package}: failed  {result.error}", flush=True)
            continue
        if options.dry_run:
            print(plan.render(), flush=True)
        for spec in plan.specs if options.emit_specs else ():
            print(json.dumps(spec.to_json()), flush=True)
    fatal = discovery.fatal_error()
    if fatal is not None:
        raise fatal
    empty = _empty(options, discovery)
    failed = False
    if options.prune and options.dry_run and not empty:
        config = options.config
        snapshots = _snapshots(clients(config.destination.registry), config)
        planned = planned_images((s for p in discovery.plans for s in p.specs), config.destination)
        _, failed = await _record_history(
            options, snapshots, discovery, RunReport(Counts()), planned, set(), dry_run=True
        )
    if options.dry_run:
        print(_plan_summary(discovery), flush=True)
    if failed or not discovery.complete or discovery.failed_packages:
        return EXIT_FAILED
    return EXIT_EMPTY if empty and not options.allow_empty else EXIT_OK


def _plan_summary(discovery: Discovery) -> str:
    """The dry run's last line, printed even when there is nothing to do."""
    dropped = sum(sum(not d.keep for d in plan.decisions) for plan in discovery.plans)
    text = (
        f"dry run: {len(discovery.plans)} package(s) selected, {len(discovery.passed_over)} "
        f"passed over, {discovery.failed_packages} failed; {discovery.planned} tag(s) to copy, "
        f"{dropped} dropped; nothing was written"
    )
    return text if discovery.complete else text + " (discovery did not finish)"


def _prune_decision(
    options: RegistryOptions, discovery: Discovery
) -> Literal["off", "refused", "nothing", "prune"]:
    """What ``--prune`` may do after this run's discovery."""
    if not options.prune or discovery.emptiness() is not None:
        return "off"  # nothing selected: nothing is pruned on an empty run's word
    if not discovery.complete or not discovery.plans:
        return "refused"
    return "prune" if options.retention.forgets else "nothing"


async def _record_history(
    options: RegistryOptions,
    snapshots: Snapshots,
    discovery: Discovery,
    report: RunReport,
    images: list[TaggedImage],
    unvouched: set[tuple[str, str | None]],
    *,
    dry_run: bool,
) -> tuple[RunReport, bool]:
    """Record the run's snapshot (``images``), apply the retention, and prune if asked: the
    report with what that did, and True if it failed.

    What this run could not vouch for (``unvouched``: a failed image; a package GitHub
    refused to list, or everything when discovery stopped early) keeps what the previous
    snapshot said of it. ``dry_run`` decides the same and writes nothing; it records only
    when a prune needs the snapshot, and its errors are the command's.
    """
    prefix = options.config.destination
    decision = _prune_decision(options, discovery)
    outside = discovery.outside_check()
    try:
        history = None
        if not dry_run or decision == "prune":
            history = await record_results(
                snapshots,
                str(options.config.source),
                images,
                options.retention,
                keep=lambda image: outside(image.repository),
                unvouched=unvouched,
                dry_run=dry_run,
            )
            report = report.with_history(history.outcome())
        lost = history is not None and bool(history.lost)  # the backup lacks what it names
        if decision == "off":
            return report, lost
        if decision == "refused":
            log.error(
                "prune_refused",
                reason="discovery was incomplete or found no packages",
                packages=len(discovery.plans),
            )
            return report.with_prune(None), True
        if decision == "nothing" or history is None:
            log.warning("prune_nothing", reason=_NO_RETENTION)
            if dry_run:
                print(f"nothing pruned: {_NO_RETENTION}", flush=True)  # not a "prune  REF" line
            return report.with_prune(()), lost
        failed = discovery.failed_check()
        result = await prune_run(
            snapshots, history, leave=lambda image: failed(image.repository), dry_run=dry_run
        )
        return report.with_prune(result.pruned), lost
    except BackupError as exc:
        if dry_run:
            raise
        log.error("history_failed", error=str(exc), backup=str(prefix))
        return report.failed_history(str(exc)), True
