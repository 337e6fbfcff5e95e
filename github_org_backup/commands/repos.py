"""The `repos` command and `verify --repos`: bare git mirrors of an owner's repositories.

    GitHub API (PyGithub) -> repository filter -> one bare mirror each (repos.mirror) -> report

Exit codes as for `registry`: 0 every repository mirrored or already current; 1 some failed
(the rest are mirrored); 2 usage, configuration or access error before anything was fetched;
143 stopped by SIGTERM or SIGINT, with the report written.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog

from github_org_backup.base.fanout import both
from github_org_backup.base.listing import listing
from github_org_backup.commands.run import CUT_SHORT, EXIT_EMPTY, EXIT_FAILED, EXIT_OK, Lifecycle
from github_org_backup.errors import BackupError, UsageError
from github_org_backup.output.progress import live_display
from github_org_backup.output.report import write_report
from github_org_backup.output.repos_report import Listing, RepoOutcome, ReposReport
from github_org_backup.output.summary import outcome
from github_org_backup.repos.git import Git
from github_org_backup.repos.mirror import RepoMirrorer, RepoStats, Target, check_tools
from github_org_backup.repos.screen import one_per_folder, screened
from github_org_backup.repos.verify import check_mirrors, mirrors_below
from github_org_backup.settings.options import Output, RunControl
from github_org_backup.settings.repos import ReposOptions, VerifyReposOptions

if TYPE_CHECKING:
    from github_org_backup.github.repos import Repo
    from github_org_backup.metadata.run import MetadataBackup
    from github_org_backup.output.metadata_report import MetadataReport, MetadataTally
    from github_org_backup.output.metrics import MetricsTargets

log = structlog.get_logger("github_org_backup.github.repos")


async def _progress(stats: RepoStats, interval_s: float, metadata: MetadataTally | None) -> None:
    progress = structlog.get_logger("github_org_backup.output.progress")
    while True:
        await asyncio.sleep(interval_s)
        more = {}
        if metadata is not None:
            more = {
                "metadata_repositories_done": metadata.repositories_done,
                "metadata_documents_written": sum(metadata.documents.values()),
                "metadata_assets_downloaded": metadata.assets,
                "metadata_failed": metadata.failed,
            }
        progress.info(
            "progress",
            repositories_done=stats.done,
            repositories_total=stats.total,
            repositories_failed=stats.failed,
            refs_updated=stats.refs_updated,
            **more,
        )


async def _show_progress(
    stats: RepoStats, output: Output, run: RunControl, metadata: MetadataTally | None
) -> None:
    """Until cancelled: the live display on a terminal, else a `progress` event per interval."""
    if output.terminal:
        await live_display(lambda: (stats.done, stats.total, 0, stats.failed), "repositories")
    else:
        await _progress(stats, run.progress_interval_s, metadata)


async def run_repos(options: ReposOptions) -> int:
    try:
        return await _repos(options)
    finally:
        options.config.identity.close()  # an App's lookup connection and its log filter


async def _repos(options: ReposOptions) -> int:
    from github_org_backup.github.repos import (
        GitHubRepos,  # PyGithub is heavy: only this command needs it
    )

    config = options.config
    git = Git(config.git)
    await check_tools(git, config.lfs)
    api = options.github
    github = GitHubRepos(
        config.owner, config.identity, config.api_url, retries=api.retries, limits=api.limits
    )
    stats = RepoStats()
    life = Lifecycle(options.output, options.run)
    dest, owner = str(config.dest), config.owner.name
    try:
        try:
            listed = await github.repositories()
        except UsageError:
            raise
        except BackupError as exc:
            log.error("discovery_failed", error=str(exc))
            report = ReposReport(stats.freeze(), dest, owner, discovery_error=str(exc))
            return _finish(life, report, doomed=True)  # nothing could be mirrored: exit 2
        wanted = [r for r in listed if config.repo_filter.allows(r)]
        empty = None if wanted else _nothing_selected(listed, str(config.owner))
        refused, wanted = screened(wanted, config)
        rate_limit_remaining = github.rate_limit_remaining
    finally:
        github.close()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    mirrorer = RepoMirrorer(git, config, stats, stamp)
    targets, clashes = one_per_folder(mirrorer.targets(wanted))
    failed_early: list[RepoOutcome] = [*refused, *clashes]
    for early in failed_early:
        log.error("repository_failed", repository=early.repository, error=early.error)
        stats.count(early)
    stats.total = len(targets) + len(failed_early)
    metadata = _metadata_backup(options) if options.metadata else None
    tally = metadata.tally if metadata is not None else None

    def stop() -> None:
        mirrorer.stop()
        if metadata is not None:
            metadata.stop()

    def abort(reason: str | None = None) -> None:
        if reason is None:
            mirrorer.abort()
        else:
            mirrorer.abort(reason)
        if metadata is not None:
            metadata.stop()

    try:
        results, metadata_report = await life.supervise(
            _mirror_and_back_up(mirrorer, targets, metadata, wanted),
            stop=stop,
            abort=abort,
            progress=lambda: _show_progress(stats, options.output, options.run, tally),
            cut=lambda: abort(CUT_SHORT),
        )
    finally:
        if metadata is not None:
            metadata.close()
    listing = Listing(
        listed=len(listed),
        filtered_out=len(listed) - len(wanted) - len(refused),
        github_rate_limit_remaining=rate_limit_remaining,
        backup_ref_prefix=f"refs/backup/{stamp}/",
    )
    report = ReposReport(
        stats.freeze(),
        dest,
        owner,
        (*failed_early, *results),
        listing=listing,
        interrupted=mirrorer.stopping,
        metadata=metadata_report,
    )
    if empty is not None:
        log.warning("nothing_selected", reason=empty, allow_empty=options.allow_empty)
    return _finish(life, report, empty=empty is not None and not options.allow_empty)


def _metadata_backup(options: ReposOptions) -> MetadataBackup:
    from github_org_backup.metadata.run import MetadataBackup, MetadataJob

    config = options.config
    identity = config.identity  # a token, or a GitHub App's installation tokens, renewed
    job = MetadataJob(
        options.metadata,
        config.dest,
        config.owner,
        config.api_url,
        "",
        options.github,
        auth=identity.auth(),
        secrets=identity.secrets,
    )
    return MetadataBackup(job)


async def _mirror_and_back_up(
    mirrorer: RepoMirrorer,
    targets: list[Target],
    metadata: MetadataBackup | None,
    repositories: list[Repo],
) -> tuple[list[RepoOutcome], MetadataReport | None]:
    """The mirrors, and beside them the metadata: git and the API's requests overlap."""
    if metadata is None:
        return await mirrorer.run(targets), None
    return await both(mirrorer.run(targets), metadata.run(repositories))


def _nothing_selected(listed: list[Repo], owner: str) -> str:
    """Why no repository was selected, naming those that exist."""
    if not listed:
        return f"{owner} has no repository this token can see: check --org/--user and the token"
    names = [r.full_name for r in listed]
    shown = listing(names)
    return (
        f"the selection matched none of the {len(names)} repositories of {owner} ({shown}): "
        "check --include-repo, --exclude-repo and --include-forks"
    )


def _finish(
    life: Lifecycle, report: ReposReport, *, empty: bool = False, doomed: bool = False
) -> int:
    """Log, write and publish the run's report; its exit code."""

    def publish(targets: MetricsTargets, succeeded: bool) -> None:
        from github_org_backup.output.metrics import REPOS
        from github_org_backup.output.metrics import publish as send

        send(targets, report, succeeded, REPOS)

    return life.finish(
        report,
        failed=report.any_failed,
        interrupted=report.interrupted,
        outcome=outcome(report),
        publish=publish,
        empty=empty,
        doomed=doomed,
    )


# verify --repos


async def run_verify_repos(options: VerifyReposOptions) -> int:
    """`git fsck` every mirror below --repos; with a token, compare its refs with the source."""
    from github_org_backup.metadata.verify import check_store, stores_below

    check = options.check
    mirrors = mirrors_below(check)
    problems = await check_mirrors(check, mirrors)
    stores = [
        s for s in stores_below(check.root) if check.mirrors.allows(str(s.relative_to(check.root)))
    ]
    for store in stores:
        problems += await asyncio.to_thread(check_store, store, check.root, deep=check.deep)
    for problem in problems:
        print(problem, flush=True)
    summary = {
        "mirrors": len(mirrors),
        "metadata_stores": len(stores),
        "problems": len(problems),
        "deep": check.deep,
        "compared_with_source": check.compares,
    }
    log.info("verify_finished", backup=str(check.root), **summary)
    if options.output.report:
        write_report(options.output.report, {"summary": summary, "problems": problems})
    if not mirrors and not stores:
        log.warning(
            "nothing_selected",
            reason=f"no git mirror (OWNER/REPO.git) below {check.root} matches: check --repos "
            "and --include-package",
            allow_empty=options.allow_empty,
        )
        return EXIT_OK if options.allow_empty else EXIT_EMPTY
    return EXIT_FAILED if problems else EXIT_OK
