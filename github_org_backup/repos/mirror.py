"""The mirror engine of the repos command: one bare mirror per repository (and wiki),
``concurrency`` at a time, each failure its own.

    listing -> screen (screen.py) -> targets -> RepoMirrorer -> RepoOutcome per target
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import structlog

# The default lives below settings (base.github_limits), which declare --repo-timeout with it.
from github_org_backup.base.github_limits import DEFAULT_REPO_TIMEOUT_S as DEFAULT_REPO_TIMEOUT_S
from github_org_backup.errors import GitError, GitTimeout, RepositoryNotFound, UsageError
from github_org_backup.model.packages import Owner
from github_org_backup.output.repos_report import RefUpdate, RepoCounts, RepoOutcome
from github_org_backup.repos.git import Git, GitSettings
from github_org_backup.repos.host import GitHost

if TYPE_CHECKING:
    from github_org_backup.github.identity import Identity
    from github_org_backup.github.repos import Repo, RepoFilter

log = structlog.get_logger("github_org_backup.github.repos")


@dataclass(frozen=True)
class ReposConfig:
    owner: Owner
    identity: Identity = field(repr=False)  # a token, or a GitHub App's renewed tokens
    username: str
    api_url: str
    dest: Path
    repo_filter: RepoFilter
    pull_refs: bool
    wikis: bool
    lfs: bool
    concurrency: int
    git: GitSettings = field(repr=False)

    @property
    def token(self) -> str:
        """The current token: for a GitHub App, the installation token now (renewed when near
        expiry). Code that outlives one token asks ``identity`` at each use instead."""
        return self.identity.git_token()

    @property
    def git_host(self) -> GitHost:
        """Where clone URLs must point, and the token may go."""
        return GitHost.for_api(self.api_url)


@dataclass
class RepoStats:
    """The run's figures as it goes (the progress display reads them); ``freeze`` at its end."""

    total: int = 0
    copied: int = 0
    unchanged: int = 0
    failed: int = 0
    absent: int = 0
    refs_updated: int = 0
    refs_kept: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def done(self) -> int:
        return self.copied + self.unchanged + self.failed + self.absent

    def count(self, outcome: RepoOutcome) -> None:
        setattr(self, outcome.status, getattr(self, outcome.status) + 1)
        self.refs_updated += outcome.refs_updated
        self.refs_kept += outcome.refs_kept

    def freeze(self) -> RepoCounts:
        return RepoCounts(
            self.total,
            self.copied,
            self.unchanged,
            self.failed,
            self.absent,
            self.refs_updated,
            self.refs_kept,
            round(time.monotonic() - self.started, 3),
        )


@dataclass(frozen=True)
class Target:
    """One mirror to bring up to date: a repository, or its wiki."""

    name: str
    kind: Literal["repository", "wiki"]
    url: str
    path: Path
    default_branch: str | None


class RepoMirrorer:
    """Mirrors a set of repositories, ``concurrency`` at a time; one failure fails only itself."""

    def __init__(self, git: Git, config: ReposConfig, stats: RepoStats, stamp: str) -> None:
        self.git = git
        self.config = config
        self.stats = stats
        self.stamp = stamp
        self._slots = asyncio.Semaphore(config.concurrency)
        self._in_flight: set[asyncio.Task[RepoOutcome]] = set()
        self.stopping = False
        self._aborting = False
        self._abandoned = "abandoned at the end of the grace period"

    def targets(self, repos: list[Repo]) -> list[Target]:
        """The mirrors of ``repos``: each repository, and its wiki with --wikis."""
        found = []
        for repo in repos:
            base = self.config.dest / repo.owner
            found.append(
                Target(
                    repo.full_name,
                    "repository",
                    repo.clone_url,
                    base / f"{repo.name}.git",
                    repo.default_branch,
                )
            )
            if self.config.wikis and repo.has_wiki:
                found.append(
                    Target(
                        f"{repo.full_name}.wiki",
                        "wiki",
                        repo.wiki_url,
                        base / f"{repo.name}.wiki.git",
                        None,
                    )
                )
        return found

    async def run(self, targets: list[Target]) -> list[RepoOutcome]:
        tasks = [asyncio.create_task(self._mirror(t)) for t in targets]
        return list(await asyncio.gather(*tasks))

    def stop(self) -> None:
        if not self.stopping:
            log.warning("run_stopping", repositories_in_flight=len(self._in_flight))
        self.stopping = True

    def abort(self, reason: str = "abandoned at the end of the grace period") -> None:
        self._abandoned = reason
        self._aborting = True
        for task in list(self._in_flight):
            task.cancel()
        self.git.kill_all()

    async def _mirror(self, target: Target) -> RepoOutcome:
        async with self._slots:
            started = time.monotonic()
            if self.stopping:
                outcome = _failed(target, "not started: the run was stopped")
            else:
                task = asyncio.current_task()
                assert task is not None
                self._in_flight.add(task)
                try:
                    outcome = await self._attempt(target)
                finally:
                    self._in_flight.discard(task)
            outcome = replace(outcome, duration_s=round(time.monotonic() - started, 3))
            self._log(outcome)
            self.stats.count(outcome)
            return outcome

    async def _attempt(self, target: Target) -> RepoOutcome:
        """The mirror brought up to date, or why not: every failure is this target's alone,
        and keeps what moved before it (the refs, when only the LFS fetch failed)."""
        known = _failed(target, None)
        limit = self.config.git.repo_timeout_s
        deadline = time.monotonic() + limit if limit else None
        try:
            known = await self._fetch(target, deadline)
            if self.config.lfs:
                lfs_objects = await self.git.fetch_lfs(target.path, target.url, deadline)
                known = replace(known, lfs_objects=lfs_objects)
            # Only now: an LFS fetch that fails leaves the repository failed.
            return replace(
                known, status="copied" if known.created or known.refs_updated else "unchanged"
            )
        except RepositoryNotFound as exc:
            if target.kind == "wiki":  # GitHub lists has_wiki even with no page
                return replace(known, status="absent")
            error = f"{exc} (deleted since it was listed, or not readable with this token)"
        except GitTimeout as exc:
            error = (
                f"{exc}: not finished within --repo-timeout "
                f"{self.config.git.repo_timeout_s or 0:.0f} s (a server that sends without "
                "end, or a slow link: raise --repo-timeout); the mirror's refs are as "
                "before this run"
            )
        except GitError as exc:
            error = str(exc)
        except OSError as exc:
            error = f"{type(exc).__name__}: {exc}"
        except asyncio.CancelledError:
            if not self._aborting:
                raise
            error = f"{self._abandoned}; the mirror's refs are as before this run"
        except Exception as exc:  # a bug or an input nobody foresaw: this repo only
            log.debug("repository_failed_unexpectedly", exc_info=True)
            error = f"unexpected {type(exc).__name__}: {exc} (please report this)"
        return replace(known, error=error)

    async def _fetch(self, target: Target, deadline: float | None) -> RepoOutcome:
        """The mirror's refs brought up to date: what moved, still marked failed."""
        result = await self.git.mirror(
            target.url,
            target.path,
            pull_refs=self.config.pull_refs and target.kind == "repository",
            stamp=self.stamp,
            default_branch=target.default_branch,
            deadline=deadline,
        )
        return replace(
            _failed(target, None),
            created=result.created,
            refs_updated=len(result.changes),
            ref_changes=tuple(
                RefUpdate(c.ref, c.old, c.new, c.kind, c.kept_as)
                for c in result.changes
                if c.kind != "created" or not result.created
            ),
        )

    def _log(self, outcome: RepoOutcome) -> None:
        bound = log.bind(repository=outcome.repository, path=outcome.path)
        if outcome.status == "failed":
            bound.error("repository_failed", error=outcome.error)
        elif outcome.status == "absent":
            bound.info("wiki_absent")
        else:
            bound.info(
                f"repository_{outcome.status}",
                created=outcome.created,
                refs_updated=outcome.refs_updated,
            )
        for change in outcome.ref_changes:
            if change.kept_as:
                bound.warning(
                    "ref_rewritten_at_source",
                    ref=change.ref,
                    change=change.change,
                    kept_as=change.kept_as,
                )


def _failed(target: Target, error: str | None) -> RepoOutcome:
    return RepoOutcome(target.name, str(target.path), target.kind, "failed", error=error)


async def check_tools(git: Git, lfs: bool) -> None:
    if not lfs:
        return
    try:
        await git.run("lfs", "version")
    except GitError:
        raise UsageError(
            "--lfs needs git-lfs: install Debian's git-lfs package (apt-get install git-lfs)"
        ) from None
