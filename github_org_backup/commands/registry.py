"""`registry`: discover an owner's packages on GitHub, copy what the policy keeps, and record
the run's snapshot (with retention and prune) in the backup."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

from github_org_backup.commands.run import EXIT_FAILED, EXIT_OK, execute, finish
from github_org_backup.errors import BackupError, UsageError
from github_org_backup.history.record import (
    Retention,
    carried_forward,
    forgotten_tags,
    kept_snapshots,
    only_forgotten,
    prune_unreferenced,
    record_run,
    tagged_images,
    unvouched_tags,
)
from github_org_backup.history.snapshots import (
    Snapshot,
    Snapshots,
    TaggedImage,
    select_kept,
    snapshot_id,
)
from github_org_backup.model.reference import Repository
from github_org_backup.model.specs import CopySpec
from github_org_backup.plan.package import PackagePlan, plan_package
from github_org_backup.settings.config import RegistryConfig
from github_org_backup.settings.options import RegistryOptions
from github_org_backup.stores.factory import Clients, open_clients
from github_org_backup.stores.protocol import Store
from github_org_backup.stores.registry.credentials import CredentialStore

if TYPE_CHECKING:
    from github_org_backup.github.packages import GitHubPackages
    from github_org_backup.output.report import PackageResult

log = structlog.get_logger("github_org_backup.commands")


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
        self._paths: dict[str, str] = {}  # lower-cased package name -> the first listed

    async def found(self) -> AsyncIterator[tuple[PackageResult, PackagePlan | None]]:
        """Each package as discovery reaches it; a package that failed comes without a plan."""
        from github_org_backup.errors import DiscoveryStopped
        from github_org_backup.model.packages import FailedPackage
        from github_org_backup.output.report import PackageResult

        try:
            async for package in self.github.packages(self.config.wants):
                if isinstance(package, FailedPackage):
                    result = PackageResult(package.name, "failed", error=package.error)
                    self.results.append(result)
                    yield result, None
                    continue
                self.packages += 1
                if (clash := self._clash(package.name)) is not None:
                    log.error("package_failed", package=package.name, error=clash)
                    result = PackageResult(package.name, "failed", error=clash)
                    self.results.append(result)
                    yield result, None
                    continue
                plan = plan_package(package, self.config)
                self.plans.append(plan)
                if plan.failed:
                    result = self._refused(plan)
                elif package.skipped:
                    result = self._out_of_shape(plan)
                elif plan.error:
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

    def _clash(self, name: str) -> str | None:
        """Repository paths are lower case: two packages whose names differ only in case would
        write one repository, and the second would take the first one's tags."""
        first = self._paths.setdefault(name.lower(), name)
        if first == name:
            return None
        return (
            f"package {name!r} would be backed up to the same repository as {first!r} (their "
            "names differ only in case): only the first one reached is backed up"
        )

    @staticmethod
    def _refused(plan: PackagePlan) -> PackageResult:
        """A package naming the tool's own namespace fails; its other tags are still copied."""
        from github_org_backup.output.report import PackageResult

        name = plan.package.name
        log.error(
            "reserved_name_refused",
            package=name,
            tags=[d.tag for d in plan.refused[:10]],
            tags_refused=len(plan.refused),
            reason=plan.refusal(),
        )
        return PackageResult(name, "failed", len(plan.specs), error=plan.refusal())

    @staticmethod
    def _out_of_shape(plan: PackagePlan) -> PackageResult:
        """A package with versions GitHub listed out of its API's shape fails (so prune leaves
        it alone); the tags of its well-formed versions are still copied."""
        from github_org_backup.output.report import PackageResult

        name, skipped = plan.package.name, plan.package.skipped
        error = f"versions listed out of the API's shape were skipped: {'; '.join(skipped[:3])}"
        if len(skipped) > 3:
            error += f"; and {len(skipped) - 3} more"
        log.error("package_out_of_shape", package=name, skipped=list(skipped[:10]))
        return PackageResult(name, "failed", len(plan.specs), error=error)

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

    def planned_repositories(self, prefix: Repository) -> set[str]:
        """The repositories (below ``prefix``) this run's plans write to."""
        found = set()
        for plan in self.plans:
            for spec in plan.specs:
                relative = spec.destination.repository.relative_to(prefix)
                if relative:
                    found.add(relative)
        return found

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
        return [asdict(result) for result in self.results]


async def run_registry(options: RegistryOptions) -> int:
    # PyGithub is heavy: only this command needs it
    from github_org_backup.github.packages import GitHubPackages, retries_from_env

    config = options.config
    github = GitHubPackages(config.owner, config.token, config.api_url, retries=retries_from_env())
    credentials = CredentialStore.from_docker_config(explicit=config.credentials())
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
    store = clients(config.destination.registry)
    snapshots = _snapshots(store, config)
    if options.discovery_cache:  # --no-discovery-cache: list everything
        await _discovery_cache(snapshots, config, github, save=False)
    discovery = _Discovery(github, config)
    stats, report = await execute(
        discovery.specs(), clients, options.output, options.run, on_stop=discovery.stop
    )
    interrupted = bool(report["summary"].get("interrupted"))
    report["summary"] |= discovery.summary() | github.cache_summary()
    if not interrupted:
        await _discovery_cache(snapshots, config, github, save=True)
    report["packages"] = discovery.entries()
    fatal = discovery.fatal_error()
    if fatal is not None and not interrupted:
        finish(options.output, options.run, stats, report, failed=True)  # report and metrics
        raise fatal
    failed = not discovery.complete or discovery.failed_packages > 0
    if not interrupted:
        failed = await _record_history(options, snapshots, discovery, report) or failed
    return finish(options.output, options.run, stats, report, failed)


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
    discovery = _Discovery(github, options.config)
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
    refused = (
        options.prune
        and options.dry_run
        and await _prune_dry_run(options, clients, discovery) is None
    )
    if refused or not discovery.complete or discovery.failed_packages:
        return EXIT_FAILED
    return EXIT_OK


async def _record_history(
    options: RegistryOptions, snapshots: Snapshots, discovery: _Discovery, report: dict[str, Any]
) -> bool:
    """Write the run's snapshot, apply the retention, and prune if asked; True if that failed.

    What this run could not vouch for (a failed image, a package GitHub refused to list, or
    everything when discovery stopped early) keeps what the previous snapshot said of it.
    """
    config = options.config
    prefix = config.destination
    images = tagged_images(report["images"], prefix)
    unvouched = unvouched_tags(report["images"], prefix, images)
    not_looked_at = _not_looked_at(config, discovery)
    try:
        previous = await snapshots.latest()
        images += carried_forward(
            previous, images, lambda i: not_looked_at(i) or (i.repository, i.tag) in unvouched
        )
        history = await record_run(
            snapshots, previous, str(config.source), images, options.retention
        )
        report["summary"] |= history.summary()
        report["moved_tags"] = history.moved
        lost = bool(history.lost)  # the backup lacks images its snapshots name: exit 1
        if not options.prune:
            return lost
        if not discovery.complete or not discovery.plans:
            log.error(
                "prune_refused",
                reason="discovery was incomplete or found no packages",
                packages=len(discovery.plans),
            )
            report["summary"]["tags_pruned"] = None
            return True
        if not options.retention.forgets:
            _nothing_to_prune(report)
            return lost
        kept = await kept_snapshots(snapshots, Retention())
        ledger = await forgotten_tags(snapshots)
        failed = _failed(config, discovery)
        result = await prune_unreferenced(
            snapshots.store,
            prefix,
            kept,
            [i for i in ledger if not failed(i)],
            dry_run=False,
            series=snapshots.series,
        )
        remaining = [*result.remaining, *(i for i in ledger if failed(i))]
        if sorted(set(remaining)) != sorted(set(ledger)):
            await snapshots.save_forgotten_tags(remaining)
        report["summary"]["tags_pruned"] = len(result.pruned)
        report["pruned"] = list(result.pruned)
    except BackupError as exc:
        log.error("history_failed", error=str(exc), backup=str(prefix))
        report["summary"]["history_error"] = str(exc)
        return True
    return lost


_NO_RETENTION = (
    "--prune deletes only the tags that --keep-last or --keep-within forgot; without them "
    "every snapshot is kept and nothing is pruned"
)


def _nothing_to_prune(report: dict[str, Any] | None) -> None:
    log.warning("prune_nothing", reason=_NO_RETENTION)
    if report is not None:
        report["summary"]["tags_pruned"] = 0
        report["pruned"] = []


def _failed(config: RegistryConfig, discovery: _Discovery) -> Callable[[TaggedImage], bool]:
    """Whether an entry belongs to a package that failed this run: prune leaves it for later."""
    owner = config.owner.name.lower()
    failed = {f"{owner}/{r.package}".lower() for r in discovery.results if r.status == "failed"}
    return lambda image: image.repository in failed


def _not_looked_at(config: RegistryConfig, discovery: _Discovery) -> Callable[[TaggedImage], bool]:
    """Whether a previous snapshot entry lies outside what this run looked at: a package
    outside --include-package/--exclude-package or this shard, one GitHub refused to list,
    or any when discovery stopped early. Such entries keep what they had."""
    owner = config.owner.name.lower()
    unlisted = {f"{owner}/{r.package}".lower() for r in discovery.results if r.status == "failed"}

    def outside(image: TaggedImage) -> bool:
        return (
            not discovery.complete
            or not config.wants(image.repository.partition("/")[2])
            or image.repository in unlisted
        )

    return outside


async def _prune_dry_run(
    options: RegistryOptions, clients: Clients, discovery: _Discovery
) -> int | None:
    """--prune --dry-run: print what a run with this retention would delete, deciding as
    the real run would: the tags only the snapshots it would forget name, and the
    forgotten-tags list, against the kept snapshots and this run's plan."""
    config, retention = options.config, options.retention
    if not discovery.complete or not discovery.plans:
        log.error("prune_refused", reason="discovery was incomplete or found no packages")
        return None
    if not retention.forgets:
        _nothing_to_prune(None)
        print(f"nothing pruned: {_NO_RETENTION}", flush=True)  # not a "prune  REF" line
        return 0
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
    previous = everything[-1] if everything else None
    not_looked_at = _not_looked_at(config, discovery)
    planned += carried_forward(previous, planned, not_looked_at)
    upcoming = Snapshot(upcoming_id, "plan", "", tuple(planned))
    forgotten = [s for s in everything if s.id not in kept_ids]
    candidates = [*await forgotten_tags(snapshots), *only_forgotten(forgotten, [*kept, upcoming])]
    result = await prune_unreferenced(
        store,
        config.destination,
        [*kept, upcoming],
        [i for i in candidates if not _failed(config, discovery)(i)],
        dry_run=True,
        series=snapshots.series,
    )
    return len(result.pruned)
