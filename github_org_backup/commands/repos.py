"""The `repos` command and `verify --repos`: bare git mirrors of an owner's repositories.

    GitHub API (PyGithub) -> repository filter -> one bare mirror each (repos.mirror) -> report

Exit codes as for `registry`: 0 every repository mirrored or already current; 1 some failed
(the rest are mirrored); 2 usage, configuration or access error before anything was fetched;
143 stopped by SIGTERM or SIGINT, with the report written.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import structlog

from github_org_backup.commands.run import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from github_org_backup.errors import BackupError, UsageError
from github_org_backup.output.progress import live_display, print_summary_table
from github_org_backup.output.report import write_report
from github_org_backup.output.summary import append_step_summary
from github_org_backup.repos.git import Git
from github_org_backup.repos.mirror import (
    RepoMirrorer,
    RepoOutcome,
    RepoStats,
    Target,
    check_tools,
)
from github_org_backup.repos.screen import one_per_folder, screened
from github_org_backup.repos.verify import check_mirrors, mirrors_below
from github_org_backup.settings.repos import ReposOptions, VerifyReposOptions

log = structlog.get_logger("github_org_backup.github.repos")


async def _progress(stats: RepoStats, interval_s: float) -> None:
    progress = structlog.get_logger("github_org_backup.output.progress")
    while True:
        await asyncio.sleep(interval_s)
        progress.info(
            "progress",
            repositories_done=stats.done,
            repositories_total=stats.total,
            repositories_failed=stats.failed,
            refs_updated=stats.refs_updated,
        )


async def run_repos(options: ReposOptions) -> int:
    from github_org_backup.github.repos import (
        GitHubRepos,  # PyGithub is heavy: only this command needs it
    )

    config = options.config
    git = Git(config.git)
    await check_tools(git, config.lfs)
    github = GitHubRepos(config.owner, config.token, config.api_url)
    stats = RepoStats()
    extra: dict[str, Any] = {"dest": str(config.dest), "owner": config.owner.name}
    try:
        try:
            listed = await github.repositories()
        except UsageError:
            raise
        except BackupError as exc:
            log.error("discovery_failed", error=str(exc))
            extra["discovery_error"] = str(exc)
            return _finish(options, stats, [], extra, failed=True)
        wanted = [r for r in listed if config.repo_filter.allows(r)]
        outcomes, wanted = screened(wanted, config)
        extra |= {
            "repositories_listed": len(listed),
            "repositories_filtered_out": len(listed) - len(wanted) - len(outcomes),
            "github_rate_limit_remaining": github.rate_limit_remaining,
        }
    finally:
        github.close()
    for outcome in outcomes:
        log.error("repository_failed", repository=outcome.repository, error=outcome.error)
        stats.count(outcome)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    mirrorer = RepoMirrorer(git, config, stats, stamp)
    targets, clashes = one_per_folder(mirrorer.targets(wanted))
    for outcome in clashes:
        log.error("repository_failed", repository=outcome.repository, error=outcome.error)
        stats.count(outcome)
    outcomes += clashes
    stats.total = len(targets) + len(outcomes)
    results = await _run_with_signals(mirrorer, targets, options)
    stats.total = len(targets) + len(outcomes)
    extra |= {"backup_ref_prefix": f"refs/backup/{stamp}/", "interrupted": mirrorer.stopping}
    return _finish(options, stats, outcomes + results, extra, failed=False)


async def _run_with_signals(
    mirrorer: RepoMirrorer, targets: list[Target], options: ReposOptions
) -> list[RepoOutcome]:
    loop = asyncio.get_running_loop()
    stats = mirrorer.stats
    display = (
        live_display(lambda: (stats.done, stats.total, 0), "repositories")
        if options.output.terminal
        else _progress(stats, options.run.progress_interval_s)
    )
    progress = asyncio.create_task(display)
    grace_period = options.run.grace_period_s

    def on_signal(name: str) -> None:
        log.warning("signal_received", signal=name, grace_period_s=grace_period)
        mirrorer.stop()
        loop.call_later(grace_period, mirrorer.abort)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig.name)
    try:
        return await mirrorer.run(targets)
    finally:
        progress.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await progress
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def _finish(
    options: ReposOptions,
    stats: RepoStats,
    outcomes: list[RepoOutcome],
    extra: dict[str, Any],
    *,
    failed: bool,
) -> int:
    summary = stats.summary() | extra
    log.info("run_finished", **summary)
    report = {"summary": summary, "repositories": [asdict(o) for o in outcomes]}
    if options.output.report:
        write_report(options.output.report, report)
    if summary.get("interrupted"):
        code = EXIT_INTERRUPTED
    else:
        code = EXIT_FAILED if failed or stats.failed else EXIT_OK
    if options.output.terminal:
        print_summary_table("repos", report, code)
    append_step_summary("repos", report, code)
    if options.run.metrics.wanted:
        from github_org_backup.output.metrics import (  # prometheus_client only when asked
            REPOS,
            publish,
        )

        publish(options.run.metrics, summary, succeeded=code == EXIT_OK, job=REPOS)
    return code


# verify --repos


async def run_verify_repos(options: VerifyReposOptions) -> int:
    """`git fsck` every mirror below --repos; with a token, compare its refs with the source."""
    check = options.check
    mirrors = mirrors_below(check)
    problems = await check_mirrors(check, mirrors)
    for problem in problems:
        print(problem, flush=True)
    summary = {
        "mirrors": len(mirrors),
        "problems": len(problems),
        "deep": check.deep,
        "compared_with_source": check.compares,
    }
    log.info("verify_finished", backup=str(check.root), **summary)
    if options.output.report:
        write_report(options.output.report, {"summary": summary, "problems": problems})
    if not mirrors:
        log.error("verify_found_nothing", backup=str(check.root))
        return EXIT_FAILED
    return EXIT_FAILED if problems else EXIT_OK
