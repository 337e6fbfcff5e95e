"""What each command does: copy, registry, verify, restore. Exit codes 0 / 1 / 2 / 143."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from backup.auth import Credentials, CredentialStore
from backup.config import (
    DEFAULT_DEST,
    RegistryConfig,
    load_registry_config,
    parse_backup_prefix,
    shard_from,
)
from backup.engine import CopyEngine
from backup.errors import BackupError, InvalidReference, UsageError
from backup.history import (
    Retention,
    carried_forward,
    kept_snapshots,
    prune_unreferenced,
    record_run,
    tagged_images,
)
from backup.plan import PackagePlan, plan_package
from backup.policy import PackageFilter, TagPolicy
from backup.progress import on_terminal, print_summary_table, show_progress
from backup.reference import Reference, Repository, parse_reference, parse_repository
from backup.report import Stats, build_report, write_report
from backup.session import HttpSettings, open_clients
from backup.snapshots import (
    HISTORY_TAG,
    SNAPSHOT_REPOSITORY,
    Snapshot,
    Snapshots,
    TaggedImage,
    id_time,
    parse_duration,
    parse_timestamp,
    select_kept,
    snapshot_id,
)
from backup.specs import CopySpec, parse_specs
from backup.store import Store
from backup.summary import append_step_summary
from backup.verify import Verifier

if TYPE_CHECKING:
    from backup.github import GitHubPackages
    from backup.report import PackageResult

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 128 + signal.SIGTERM  # 143, as a process killed by SIGTERM reports

log = structlog.get_logger("backup.commands")


def _copy_specs(args: argparse.Namespace) -> list[CopySpec]:
    if args.specs is not None:
        if args.source or args.destination or args.platform:
            raise UsageError("give either SRC DST (with --platform) or --specs FILE, not both")
        try:
            data = sys.stdin.buffer.read() if args.specs == "-" else Path(args.specs).read_bytes()
            text = data.decode("utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read specs {args.specs}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise UsageError(
                f"specs {args.specs} are not UTF-8 text (byte {exc.start}): "
                'a spec file holds JSON objects such as {"src": ..., "dst": ...}'
            ) from None
        specs = parse_specs(text)
        if not specs:
            log.warning("specs_empty", specs=args.specs, hint="nothing to copy")
        return specs
    if not (args.source and args.destination):
        raise UsageError("copy needs SRC and DST, or --specs FILE")
    parse_reference(args.source)  # raise InvalidReference with the reference's own message
    parse_reference(args.destination)
    spec: dict[str, Any] = {"src": args.source, "dst": args.destination}
    if args.platform:
        spec["transform"] = {"limitPlatforms": args.platform}
    return parse_specs(json.dumps(spec))


def http_settings(args: argparse.Namespace) -> HttpSettings:
    """The HTTP settings every command builds from its flags; --chunk-size only where offered."""
    return HttpSettings(
        ca_file=args.ca_file,
        connect_timeout_s=args.connect_timeout,
        read_timeout_s=args.read_timeout,
        chunk_size=getattr(args, "chunk_size", None),
        max_request_rates=dict(args.max_request_rate),
    )


async def execute(
    specs: Sequence[CopySpec] | AsyncIterator[CopySpec],
    args: argparse.Namespace,
    credentials: dict[str, Credentials] | None = None,
    on_stop: Callable[[], None] | None = None,
) -> tuple[Stats, dict[str, Any]]:
    """Run the engine over ``specs``; the stats and the report (not yet written).

    ``on_stop`` is called on SIGTERM/SIGINT, e.g. to abandon a discovery that feeds ``specs``.
    """
    stats = Stats()
    store = CredentialStore.from_docker_config(explicit=credentials)
    settings = http_settings(args)
    async with open_clients(store, settings) as clients:
        engine = CopyEngine(clients, stats, concurrency=args.concurrency)
        progress = asyncio.create_task(
            show_progress(
                stats, terminal=on_terminal(args.log_format), interval_s=args.progress_interval
            )
        )
        loop = asyncio.get_running_loop()
        grace_period = args.grace_period

        def on_signal(name: str) -> None:
            log.warning("signal_received", signal=name, grace_period_s=grace_period)
            engine.stop()
            if on_stop is not None:
                on_stop()
            loop.call_later(grace_period, engine.abort)

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal, sig.name)
        try:
            results = await engine.run(specs)
        finally:
            progress.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await progress  # the live display draws its last frame before the summary
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        requests = clients.requests
    extra = {"requests": requests, "interrupted": engine.stopping}
    return stats, build_report(stats, results, extra)


def _finish(args: argparse.Namespace, stats: Stats, report: dict[str, Any], failed: bool) -> int:
    summary = report["summary"]
    log.info("run_finished", **summary)
    if args.report:
        write_report(args.report, report)
    if summary.get("interrupted"):
        code = EXIT_INTERRUPTED
    else:
        code = EXIT_FAILED if failed or stats.images_failed else EXIT_OK
    if on_terminal(args.log_format):
        print_summary_table(args.command, report, code)
    append_step_summary(args.command, report, code)
    pushgateway = args.pushgateway or os.environ.get("PUSHGATEWAY_URL")
    if pushgateway or args.metrics_file:
        from backup.metrics import MetricsTargets, publish  # prometheus_client only when asked

        shard = getattr(args, "shard", None) or os.environ.get("JOB_COMPLETION_INDEX") or "all"
        targets = MetricsTargets(pushgateway, args.metrics_file, shard.replace("/", "-of-"))
        publish(targets, summary, succeeded=code == EXIT_OK)
    return code


async def run_copy(args: argparse.Namespace) -> int:
    stats, report = await execute(_copy_specs(args), args)
    failed = False
    if args.snapshot_prefix and not report["summary"].get("interrupted"):
        failed = await _record_copy_snapshot(args, report)
    return _finish(args, stats, report, failed=failed)


async def _record_copy_snapshot(args: argparse.Namespace, report: dict[str, Any]) -> bool:
    """copy --snapshot-prefix: a snapshot of the tags this run wrote below the prefix."""
    prefix = parse_backup_prefix(args.snapshot_prefix)
    images = tagged_images(report["images"], prefix)
    failed = set()
    for image in report["images"]:
        if image.get("status") == "failed":
            with contextlib.suppress(InvalidReference):
                reference = parse_reference(image["destination"], default_tag=None)
                failed.add((reference.repository.relative_to(prefix), reference.tag))
    credentials = CredentialStore.from_docker_config(explicit=_dest_credentials(prefix))
    try:
        async with open_clients(credentials, http_settings(args)) as clients:
            snapshots = Snapshots(clients(prefix.registry), prefix)
            previous = await snapshots.latest()
            images += carried_forward(previous, images, lambda i: (i.repository, i.tag) in failed)
            sources = sorted(
                {str(parse_reference(i["source"]).repository.registry) for i in report["images"]}
            )
            history = await record_run(
                snapshots, previous, ",".join(sources) or "copy", images, retention_from(args)
            )
    except BackupError as exc:
        log.error("history_failed", error=str(exc), backup=str(prefix))
        report["summary"]["history_error"] = str(exc)
        return True
    report["summary"] |= history.summary()
    report["moved_tags"] = history.moved
    return False


class _Discovery:
    """Feeds specs to the engine as packages are listed; remembers what became of each package
    and why discovery stopped, if it did."""

    def __init__(self, github: GitHubPackages, config: RegistryConfig) -> None:
        self.github = github
        self.config = config
        self.packages = 0
        self.plans: list[PackagePlan] = []
        self.results: list[PackageResult] = []
        self.error: BackupError | None = None  # what ended discovery early
        self.stopped = False  # by a signal

    async def found(self) -> AsyncIterator[tuple[PackageResult, PackagePlan | None]]:
        """Each package as discovery reaches it; a package that failed comes without a plan."""
        from backup.github import DiscoveryStopped
        from backup.packages import FailedPackage
        from backup.report import PackageResult

        try:
            async for package in self.github.packages(self.config.wants):
                if isinstance(package, FailedPackage):
                    result = PackageResult(package.name, "failed", error=package.error)
                    self.results.append(result)
                    yield result, None
                    continue
                self.packages += 1
                plan = plan_package(package, self.config)
                self.plans.append(plan)
                if plan.error:
                    log.error("package_skipped", package=package.name, error=plan.error)
                    result = PackageResult(package.name, "skipped", error=plan.error)
                else:
                    result = PackageResult(package.name, "discovered", len(plan.specs))
                self.results.append(result)
                yield result, plan
        except DiscoveryStopped:
            self.stopped = True
            log.warning("discovery_stopped", packages_discovered=self.packages)
        except BackupError as exc:
            self.error = exc
            log.error("discovery_failed", error=str(exc), packages_discovered=self.packages)

    async def specs(self) -> AsyncIterator[CopySpec]:
        async for _, plan in self.found():
            for spec in plan.specs if plan else ():
                yield spec

    def stop(self) -> None:
        self.github.stop()

    @property
    def complete(self) -> bool:
        return self.error is None and not self.stopped and not self.github.truncated

    @property
    def failed_packages(self) -> int:
        return sum(result.status == "failed" for result in self.results)

    def fatal_error(self) -> UsageError | None:
        """Discovery failed before reaching any package: nothing can be backed up (exit 2)."""
        if self.error is None or self.results:
            return None
        if isinstance(self.error, UsageError):
            return self.error
        return UsageError(str(self.error))

    def summary(self) -> dict[str, Any]:
        return {
            "packages": self.packages,
            "packages_failed": self.failed_packages,
            "github_requests": self.github.pages_requested,
            "github_rate_limit_remaining": self.github.rate_limit_remaining,
            "discovery_truncated": self.github.truncated,
            "discovery_error": str(self.error) if self.error else None,
        }

    def entries(self) -> list[dict[str, Any]]:
        from dataclasses import asdict

        return [asdict(result) for result in self.results]


async def run_registry(args: argparse.Namespace) -> int:
    # PyGithub is heavy: only this command needs it
    from backup.github import GitHubPackages, retries_from_env

    config = load_registry_config(args)
    github = GitHubPackages(config.owner, config.token, config.api_url, retries=retries_from_env())
    try:
        if args.dry_run or args.emit_specs:
            return await _plan_only(args, config, github)
        if args.discovery_cache:  # --no-discovery-cache: list everything
            await _discovery_cache(args, config, github, save=False)
        discovery = _Discovery(github, config)
        stats, report = await execute(
            discovery.specs(), args, config.credentials(), on_stop=discovery.stop
        )
        report["summary"] |= discovery.summary() | github.cache_summary()
        if not report["summary"].get("interrupted"):
            await _discovery_cache(args, config, github, save=True)
        report["packages"] = discovery.entries()
        fatal = discovery.fatal_error()
        if fatal is not None and not report["summary"].get("interrupted"):
            _finish(args, stats, report, failed=True)  # the report and metrics say so too
            raise fatal
        failed = not discovery.complete or discovery.failed_packages > 0
        if not report["summary"].get("interrupted"):
            failed = await _record_history(args, config, discovery, report) or failed
        return _finish(args, stats, report, failed)
    finally:
        github.close()


async def _discovery_cache(
    args: argparse.Namespace, config: RegistryConfig, github: GitHubPackages, *, save: bool
) -> None:
    """Load the last run's discovery cache from beside the snapshots, or save this run's.

    Never fatal: without a cache, discovery lists everything.
    """
    from backup.discovery_cache import load_cache, save_cache

    credentials = CredentialStore.from_docker_config(explicit=config.credentials())
    try:
        async with open_clients(credentials, http_settings(args)) as clients:
            store = clients(config.destination.registry)
            repository = _snapshots(store, config).repository
            if not save:
                github.use_cache(await load_cache(store, repository, config.owner, config.api_url))
            elif (learned := github.learned_cache()) is not None:
                await save_cache(store, repository, learned)
    except BackupError as exc:
        log.warning("discovery_cache_failed", error=str(exc), saving=save)


async def _plan_only(
    args: argparse.Namespace, config: RegistryConfig, github: GitHubPackages
) -> int:
    discovery = _Discovery(github, config)
    async for result, plan in discovery.found():
        if plan is None:
            if args.dry_run:
                print(f"{result.package}: failed  {result.error}", flush=True)
            continue
        if args.dry_run:
            print(plan.render(), flush=True)
        for spec in plan.specs if args.emit_specs else ():
            print(json.dumps(spec.to_json()), flush=True)
    fatal = discovery.fatal_error()
    if fatal is not None:
        raise fatal
    refused = (
        args.prune and args.dry_run and (await _prune_dry_run(args, config, discovery) is None)
    )
    if refused or not discovery.complete or discovery.failed_packages:
        return EXIT_FAILED
    return EXIT_OK


def retention_from(args: argparse.Namespace) -> Retention:
    keep_within = parse_duration(args.keep_within) if args.keep_within else None
    if args.keep_last is not None and args.keep_last < 1:
        raise UsageError("--keep-last must be at least 1: the latest snapshot is always kept")
    return Retention(args.keep_last, keep_within)


def _snapshots(store: Store, config: RegistryConfig) -> Snapshots:
    return Snapshots(store, config.destination, config.shard.series if config.shard else "")


async def _record_history(
    args: argparse.Namespace, config: RegistryConfig, discovery: _Discovery, report: dict[str, Any]
) -> bool:
    """Write the run's snapshot, apply the retention, and prune if asked; True if that failed.

    What this run could not vouch for (a failed image, a package GitHub refused to list, or
    everything when discovery stopped early) keeps what the previous snapshot said of it.
    """
    retention = retention_from(args)
    prefix = config.destination
    images = tagged_images(report["images"], prefix)
    owner = config.owner.name.lower()
    unlisted = {f"{owner}/{r.package}".lower() for r in discovery.results if r.status == "failed"}
    failed_tags = set()
    for image in report["images"]:
        if image.get("status") == "failed":
            with contextlib.suppress(InvalidReference):
                reference = parse_reference(image["destination"], default_tag=None)
                relative = reference.repository.relative_to(prefix)
                failed_tags.add((relative, reference.tag))

    def vouched_for_elsewhere(image: TaggedImage) -> bool:
        # Packages this run does not cover (--include-package, --shard) keep what they had.
        not_ours = not config.wants(image.repository.partition("/")[2])
        return (
            not discovery.complete
            or not_ours
            or image.repository in unlisted
            or (image.repository, image.tag) in failed_tags
        )

    credentials = CredentialStore.from_docker_config(explicit=config.credentials())
    try:
        async with open_clients(credentials, http_settings(args)) as clients:
            store = clients(prefix.registry)
            snapshots = _snapshots(store, config)
            previous = await snapshots.latest()
            images += carried_forward(previous, images, vouched_for_elsewhere)
            history = await record_run(snapshots, previous, str(config.source), images, retention)
            report["summary"] |= history.summary()
            report["moved_tags"] = history.moved
            if not args.prune:
                return False
            if not discovery.complete or not discovery.plans:
                log.error(
                    "prune_refused",
                    reason="discovery was incomplete or found no packages",
                    packages=len(discovery.plans),
                )
                report["summary"]["tags_pruned"] = None
                return True
            kept = await kept_snapshots(snapshots, Retention())
            repositories = {i.repository for s in kept for i in s.images}
            repositories |= {i.repository for i in previous.images} if previous else set()
            pruned = await prune_unreferenced(
                store, prefix, kept, repositories | _planned(discovery, prefix), dry_run=False
            )
            report["summary"]["tags_pruned"] = len(pruned)
            report["pruned"] = pruned
    except BackupError as exc:
        log.error("history_failed", error=str(exc), backup=str(prefix))
        report["summary"]["history_error"] = str(exc)
        return True
    return False


def _planned(discovery: _Discovery, prefix: Repository) -> set[str]:
    found = set()
    for plan in discovery.plans:
        for spec in plan.specs:
            relative = spec.destination.repository.relative_to(prefix)
            if relative:
                found.add(relative)
    return found


async def _prune_dry_run(
    args: argparse.Namespace, config: RegistryConfig, discovery: _Discovery
) -> int | None:
    """--prune --dry-run: print what a run with this retention would delete."""
    if not discovery.complete or not discovery.plans:
        log.error("prune_refused", reason="discovery was incomplete or found no packages")
        return None
    retention = retention_from(args)
    credentials = CredentialStore.from_docker_config(explicit=config.credentials())
    async with open_clients(credentials, http_settings(args)) as clients:
        store = clients(config.destination.registry)
        snapshots = _snapshots(store, config)
        everything = [s async for s in snapshots.all()]
        # As the real run would: this run's snapshot becomes the latest, then retention applies.
        upcoming_id = snapshot_id(datetime.now(UTC))
        kept_ids = select_kept(
            [*(s.id for s in everything), upcoming_id],
            keep_last=retention.keep_last,
            keep_within=retention.keep_within,
        )
        kept = [s for s in everything if s.id in kept_ids]
        planned = [
            TaggedImage(relative, spec.destination.tag, spec.source.digest or "", "", 0)
            for plan in discovery.plans
            for spec in plan.specs
            if (relative := spec.destination.repository.relative_to(config.destination))
            and spec.destination.tag
        ]
        upcoming = Snapshot(upcoming_id, "plan", "", tuple(planned))
        repositories = {i.repository for s in everything for i in s.images}
        pruned = await prune_unreferenced(
            store,
            config.destination,
            [*kept, upcoming],
            repositories | _planned(discovery, config.destination),
            dry_run=True,
        )
    return len(pruned)


async def _backup_tags(
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
            return _tags_from_report(report, prefix, packages)
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


def _tags_from_report(
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


async def run_verify(args: argparse.Namespace) -> int:
    prefix = parse_backup_prefix(
        args.dest or os.environ.get("BACKUP_DEST") or DEFAULT_DEST, must_exist=True
    )
    credentials = CredentialStore.from_docker_config(explicit=_dest_credentials(prefix))
    async with open_clients(credentials, http_settings(args)) as clients:
        store = clients(prefix.registry)
        tags = await _backup_tags(
            store,
            prefix,
            PackageFilter(tuple(args.include_package)),
            None,
            args.from_report,
            internal=not args.include_package,
        )
        result = await Verifier(store, deep=args.deep, concurrency=args.concurrency).verify(tags)
    for problem in result.problems:
        print(problem, flush=True)
    summary = {
        "tags": result.tags,
        "manifests": result.manifests,
        "blobs": result.blobs,
        "problems": len(result.problems),
        "deep": args.deep,
    }
    log.info("verify_finished", backup=str(prefix), **summary)
    if args.report:
        write_report(
            args.report, {"summary": summary, "problems": [str(p) for p in result.problems]}
        )
    if not tags:
        log.error("verify_found_nothing", backup=str(prefix))
        return EXIT_FAILED
    return EXIT_FAILED if result.problems else EXIT_OK


async def run_restore(args: argparse.Namespace) -> int:
    source = parse_backup_prefix(args.source, must_exist=True)
    target = parse_repository(args.target, root=True)
    include = TagPolicy.from_patterns(args.include_tag) if args.include_tag else None
    packages = PackageFilter(tuple(args.include_package))
    credentials = CredentialStore.from_docker_config(explicit=_dest_credentials(target))
    async with open_clients(credentials, http_settings(args)) as clients:
        store = clients(source.registry)
        snapshots = Snapshots(store, source, _series(args))
        snapshot = await _chosen_snapshot(args, snapshots)
        if snapshot is not None:
            specs = _specs_from_snapshot(snapshot, source, target, packages, include)
            log.info("restore_from_snapshot", snapshot=snapshot.id, tags=len(specs))
        else:
            specs = _specs_from_tags(
                await _backup_tags(store, source, packages, include, args.from_report),
                source,
                target,
            )
    if not specs:
        raise UsageError(f"nothing to restore below {source}")
    stats, report = await execute(specs, args, _dest_credentials(target))
    if snapshot is not None:
        report["summary"]["snapshot"] = snapshot.id
    return _finish(args, stats, report, failed=False)


def _series(args: argparse.Namespace) -> str:
    shard = shard_from(args)
    return shard.series if shard else ""


async def _chosen_snapshot(args: argparse.Namespace, snapshots: Snapshots) -> Snapshot | None:
    """--snapshot ID, the latest at or before --as-of, or the latest; None if there are none."""
    if args.snapshot:
        id_time(args.snapshot)  # a usage error when it is not an id
        return await snapshots.load(args.snapshot)
    if args.as_of:
        moment = parse_timestamp(args.as_of)
        found = await snapshots.at_or_before(moment)
        if found is None:
            raise UsageError(f"no snapshot of {snapshots.prefix} at or before {args.as_of}")
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


async def run_snapshots(args: argparse.Namespace) -> int:
    """List a backup's snapshots: id, time, tags, digests."""
    prefix = parse_backup_prefix(
        args.dest or os.environ.get("BACKUP_DEST") or DEFAULT_DEST, must_exist=True
    )
    credentials = CredentialStore.from_docker_config(explicit=_dest_credentials(prefix))
    async with open_clients(credentials, http_settings(args)) as clients:
        snapshots = Snapshots(clients(prefix.registry), prefix, _series(args))
        found = [snapshot.summary() async for snapshot in snapshots.all()]
    if args.json:
        json.dump(found, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"{'id':<22} {'time':<25} {'tags':>6} {'digests':>8}  source")
        for entry in found:
            print(
                f"{entry['id']:<22} {entry['time']:<25} {entry['tags']:>6} "
                f"{entry['digests']:>8}  {entry['source']}"
            )
    if args.report:
        write_report(args.report, {"snapshots": found})
    if not found:
        log.error("no_snapshots", backup=str(prefix))
        return EXIT_FAILED
    return EXIT_OK


def _dest_credentials(prefix: Repository) -> dict[str, Credentials]:
    user, password = os.environ.get("DEST_USERNAME"), os.environ.get("DEST_PASSWORD")
    if user and password and not prefix.registry.layout:
        return {prefix.registry.host: Credentials(user, password)}
    return {}
