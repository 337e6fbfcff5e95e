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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from backup.auth import Credentials, CredentialStore
from backup.config import (
    DEFAULT_DEST,
    RegistryConfig,
    load_registry_config,
    parse_backup_prefix,
)
from backup.engine import CopyEngine
from backup.errors import BackupError, InvalidReference, UsageError
from backup.plan import PackagePlan, plan_package
from backup.policy import PackageFilter, TagPolicy
from backup.progress import on_terminal, print_summary_table, show_progress
from backup.reference import Reference, Repository, parse_reference, parse_repository
from backup.report import Stats, build_report, write_report
from backup.session import HttpSettings, open_clients
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
                "a spec file holds JSON objects such as {\"src\": ..., \"dst\": ...}"
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
    return _finish(args, stats, report, failed=False)


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
        discovery = _Discovery(github, config)
        stats, report = await execute(
            discovery.specs(), args, config.credentials(), on_stop=discovery.stop
        )
        report["summary"] |= discovery.summary()
        report["packages"] = discovery.entries()
        fatal = discovery.fatal_error()
        if fatal is not None and not report["summary"].get("interrupted"):
            _finish(args, stats, report, failed=True)  # the report and metrics say so too
            raise fatal
        failed = not discovery.complete or discovery.failed_packages > 0
        if args.prune:
            pruned = await prune(args, config, discovery.plans, discovery.complete, dry_run=False)
            report["summary"]["tags_pruned"] = pruned
            failed = failed or pruned is None
        return _finish(args, stats, report, failed)
    finally:
        github.close()


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
        args.prune
        and args.dry_run
        and (await prune(args, config, discovery.plans, discovery.complete, dry_run=True) is None)
    )
    if refused or not discovery.complete or discovery.failed_packages:
        return EXIT_FAILED
    return EXIT_OK


async def prune(
    args: argparse.Namespace,
    config: RegistryConfig,
    plans: list[PackagePlan],
    discovery_complete: bool,
    *,
    dry_run: bool,
) -> int | None:
    """Delete destination tags the policy no longer keeps; None when it refused to run.

    Refuses when discovery was incomplete or found nothing, and skips any package GitHub
    listed without tags: an empty answer is more likely an error than a real deletion.
    """
    if not discovery_complete or not plans:
        log.error(
            "prune_refused",
            reason="discovery was incomplete or found no packages",
            packages=len(plans),
        )
        return None
    store_credentials = CredentialStore.from_docker_config(explicit=config.credentials())
    deleted = 0
    async with open_clients(store_credentials, http_settings(args)) as clients:
        store = clients(config.destination.registry)
        for plan in plans:
            if plan.error or not plan.package.tags:
                continue
            kept = {s.destination.tag: s.source.digest for s in plan.specs}
            target = plan.specs[0].destination.repository if plan.specs else None
            if target is None:
                continue
            kept_digests = set(kept.values())
            for tag in await store.list_tags(target.name):
                if tag in kept:
                    continue
                found = await store.resolve_manifest(target.name, tag)
                if (
                    found is not None
                    and found.digest in kept_digests
                    and not target.registry.layout
                ):
                    # Deleting by digest would take the kept tag with it.
                    log.warning(
                        "prune_skipped",
                        repository=str(target),
                        tag=tag,
                        reason="shares its digest with a kept tag",
                    )
                    continue
                if dry_run:
                    print(f"prune  {target}:{tag}", flush=True)
                else:
                    await store.delete_tag(target.name, tag)
                    log.info("tag_pruned", repository=str(target), tag=tag)
                deleted += 1
    return deleted


async def _backup_tags(
    store: Store,
    prefix: Repository,
    packages: PackageFilter,
    include_tags: TagPolicy | None,
    report: Path | None,
) -> list[tuple[str, str]]:
    """(repository, tag) pairs below ``prefix``: from the store's catalog, or a run's report."""
    try:
        names = await store.list_repositories()
    except BackupError as exc:
        if report is None:
            raise UsageError(
                f"cannot list the repositories of {store.registry} ({exc}): pass --from-report "
                "FILE with the report of the run that wrote the backup"
            ) from None
        return _tags_from_report(report, prefix, packages)
    found: list[tuple[str, str]] = []
    for name in sorted(names):
        try:
            relative = Repository(prefix.registry, name).relative_to(prefix)
        except InvalidReference:
            continue
        if relative is None or not packages.allows(relative):
            continue
        for tag in await store.list_tags(name):
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
            store, prefix, PackageFilter(tuple(args.include_package)), None, args.from_report
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
    credentials = CredentialStore.from_docker_config(explicit=_dest_credentials(target))
    async with open_clients(credentials, http_settings(args)) as clients:
        tags = await _backup_tags(
            clients(source.registry),
            source,
            PackageFilter(tuple(args.include_package)),
            include,
            args.from_report,
        )
    if not tags:
        raise UsageError(f"nothing to restore below {source}")
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
    stats, report = await execute(specs, args, _dest_credentials(target))
    return _finish(args, stats, report, failed=False)


def _dest_credentials(prefix: Repository) -> dict[str, Credentials]:
    user, password = os.environ.get("DEST_USERNAME"), os.environ.get("DEST_PASSWORD")
    if user and password and not prefix.registry.layout:
        return {prefix.registry.host: Credentials(user, password)}
    return {}
