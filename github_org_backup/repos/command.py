"""The `repos` command and `verify --repos`: bare git mirrors of an owner's repositories.

    GitHub API (PyGithub) -> repository filter -> one bare mirror each (git.py) -> report

Exit codes as for `registry`: 0 every repository mirrored or already current; 1 some failed
(the rest are mirrored); 2 usage, configuration or access error before anything was fetched;
143 stopped by SIGTERM or SIGINT, with the report written.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fnmatch
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import structlog

from github_org_backup.base.limits import DEFAULT_MAX_BLOB_BYTES, DEFAULT_MIN_BYTES_PER_S
from github_org_backup.commands.run import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from github_org_backup.errors import (
    BackupError,
    GitError,
    GitMissing,
    GitTimeout,
    RepositoryNotFound,
    UsageError,
)
from github_org_backup.model.packages import Owner
from github_org_backup.output.progress import live_display, print_summary_table
from github_org_backup.output.report import write_report
from github_org_backup.output.summary import append_step_summary
from github_org_backup.repos.git import Git, GitHost, GitSettings
from github_org_backup.settings.config import (
    DEFAULT_API_URL,
    DEFAULT_USERNAME,
    _read_token,
    check_http_url,
)
from github_org_backup.settings.options import (
    Output,
    RunControl,
    output_from,
    refuse_shard_flags,
    run_control_from,
)

if TYPE_CHECKING:
    from github_org_backup.github.repos import Repo, RepoFilter

log = structlog.get_logger("github_org_backup.github.repos")

DEFAULT_REPOS_DEST = "./github-repos"
DEFAULT_REPOS_CONCURRENCY = 4
DEFAULT_REPO_TIMEOUT_S = 3600.0

Status = Literal["copied", "unchanged", "failed", "absent"]


@dataclass(frozen=True)
class ReposConfig:
    owner: Owner
    token: str = field(repr=False)
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
    def git_host(self) -> GitHost:
        """Where clone URLs must point, and the token may go."""
        return GitHost.for_api(self.api_url)


def _api_url(args: argparse.Namespace, env: Mapping[str, str]) -> str:
    return check_http_url(
        getattr(args, "github_api_url", None) or env.get("GITHUB_API_URL") or DEFAULT_API_URL,
        "--github-api-url",
        "https://api.github.com or https://HOST/api/v3",
    )


def _token(args: argparse.Namespace, env: Mapping[str, str]) -> str:
    try:
        return _read_token(args, env)
    except UsageError as exc:  # the shared reader names the packages scope
        raise UsageError(
            str(exc).replace(
                "read:packages", "the repo scope, or a fine-grained token with Contents: read"
            )
        ) from None


def _dest(text: str) -> Path:
    if text.startswith("oci:") or "://" in text:
        raise UsageError(
            f"--dest {text!r}: repos writes git mirrors to a directory, e.g. {DEFAULT_REPOS_DEST}"
        )
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise UsageError(f"--dest {text}: exists and is not a directory")
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise UsageError(f"--dest {text}: {blocking} is a file, so {path} cannot be a directory")
    return path


def load_repos_config(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> ReposConfig:
    from github_org_backup.github.repos import RepoFilter

    org = args.org or env.get("GITHUB_ORG")
    user = args.user or env.get("GITHUB_OWNER_USER")
    if bool(org) == bool(user):
        raise UsageError("name exactly one owner: --org / GITHUB_ORG or --user / GITHUB_OWNER_USER")
    owner = Owner("orgs", org) if org else Owner("users", user)  # type: ignore[arg-type]
    token = _token(args, env)
    username = env.get("GITHUB_USERNAME") or DEFAULT_USERNAME
    api_url = _api_url(args, env)
    return ReposConfig(
        owner=owner,
        token=token,
        username=username,
        api_url=api_url,
        dest=_dest(args.dest or env.get("REPOS_DEST") or DEFAULT_REPOS_DEST),
        repo_filter=RepoFilter(
            tuple(args.include_repo), tuple(args.exclude_repo), include_forks=args.include_forks
        ),
        pull_refs=args.pull_refs,
        wikis=args.wikis,
        lfs=args.lfs,
        concurrency=args.concurrency,
        git=GitSettings(
            username,
            token,
            args.ca_file,
            args.read_timeout,
            token_host=GitHost.for_api(api_url),
            repo_timeout_s=getattr(args, "repo_timeout", DEFAULT_REPO_TIMEOUT_S),
        ),
    )


@dataclass(frozen=True)
class ReposOptions:
    output: Output
    run: RunControl
    config: ReposConfig


def repos_options(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> ReposOptions:
    return ReposOptions(
        output_from(args), run_control_from(args, env), load_repos_config(args, env)
    )


@dataclass(frozen=True)
class VerifyReposOptions:
    output: Output
    root: Path
    globs: tuple[str, ...]
    deep: bool
    concurrency: int
    git: GitSettings = field(repr=False)
    timeout_s: float = 300.0

    @property
    def compares(self) -> bool:
        """With a token, each mirror's refs are compared with the source's."""
        return self.git.token is not None


def _refuse_image_bounds(args: argparse.Namespace) -> None:
    """The registry's transfer bounds mean nothing to git: refused rather than ignored."""
    given = [
        flag
        for flag, attribute, default in (
            ("--min-speed", "min_speed", DEFAULT_MIN_BYTES_PER_S),
            ("--max-blob-size", "max_blob_size", DEFAULT_MAX_BLOB_BYTES),
            ("--allow-token-realm", "allow_token_realm", []),
            ("--allow-internal-redirects", "allow_internal_redirects", False),
        )
        if getattr(args, attribute, default) != default
    ]
    if given:
        raise UsageError(
            f"--repos checks git mirrors: {', '.join(given)}: for image backups only "
            "(git's stall limit is --read-timeout)"
        )


def verify_repos_options(
    args: argparse.Namespace, env: Mapping[str, str] = os.environ
) -> VerifyReposOptions:
    if args.dest or args.from_report or args.max_request_rate:
        raise UsageError(
            "--repos checks git mirrors: --dest, --from-report and --max-request-rate are for "
            "image backups; run verify once for each"
        )
    refuse_shard_flags(args, "--repos checks git mirrors")
    _refuse_image_bounds(args)
    root = Path(args.repos)
    if not root.is_dir():
        raise UsageError(f"--repos {root}: directory does not exist")
    token = env.get("GITHUB_TOKEN", "").strip() or None
    username = env.get("GITHUB_USERNAME") or DEFAULT_USERNAME
    return VerifyReposOptions(
        output=output_from(args),
        root=root,
        globs=tuple(args.include_package),
        deep=args.deep,
        concurrency=args.concurrency,
        git=GitSettings(
            username,
            token,
            args.ca_file,
            args.read_timeout,
            token_host=GitHost.for_api(_api_url(args, env)),
        ),
        timeout_s=args.connect_timeout + args.read_timeout,
    )


# One run


@dataclass
class RepoOutcome:
    repository: str
    path: str
    kind: Literal["repository", "wiki"]
    status: Status
    error: str | None = None
    created: bool = False
    refs_updated: int = 0
    ref_changes: list[dict[str, str | None]] = field(default_factory=list)
    lfs_objects: int | None = None
    duration_s: float = 0.0


@dataclass
class RepoStats:
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
        self.refs_kept += sum(1 for c in outcome.ref_changes if c.get("kept_as"))

    def summary(self) -> dict[str, Any]:
        return {
            "repositories_total": self.total,
            "repositories_copied": self.copied,
            "repositories_unchanged": self.unchanged,
            "repositories_failed": self.failed,
            "wikis_absent": self.absent,
            "refs_updated": self.refs_updated,
            "refs_kept": self.refs_kept,
            "duration_s": round(time.monotonic() - self.started, 3),
        }


@dataclass(frozen=True)
class _Target:
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

    def targets(self, repos: list[Repo]) -> list[_Target]:
        """The mirrors of ``repos``: each repository, and its wiki with --wikis."""
        found = []
        for repo in repos:
            base = self.config.dest / repo.owner
            found.append(
                _Target(
                    repo.full_name,
                    "repository",
                    repo.clone_url,
                    base / f"{repo.name}.git",
                    repo.default_branch,
                )
            )
            if self.config.wikis and repo.has_wiki:
                found.append(
                    _Target(
                        f"{repo.full_name}.wiki",
                        "wiki",
                        repo.wiki_url,
                        base / f"{repo.name}.wiki.git",
                        None,
                    )
                )
        return found

    async def run(self, targets: list[_Target]) -> list[RepoOutcome]:
        self.stats.total = len(targets)
        tasks = [asyncio.create_task(self._mirror(t)) for t in targets]
        return list(await asyncio.gather(*tasks))

    def stop(self) -> None:
        if not self.stopping:
            log.warning("run_stopping", repositories_in_flight=len(self._in_flight))
        self.stopping = True

    def abort(self) -> None:
        self._aborting = True
        for task in list(self._in_flight):
            task.cancel()
        self.git.kill_all()

    async def _mirror(self, target: _Target) -> RepoOutcome:
        async with self._slots:
            started = time.monotonic()
            outcome = RepoOutcome(target.name, str(target.path), target.kind, "failed")
            if self.stopping:
                outcome.error = "not started: the run was stopped"
            else:
                task = asyncio.current_task()
                assert task is not None
                self._in_flight.add(task)
                try:
                    await self._fetch(target, outcome)
                except RepositoryNotFound as exc:
                    if target.kind == "wiki":
                        outcome.status = "absent"  # GitHub lists has_wiki even with no page
                    else:
                        outcome.error = f"{exc} (deleted since it was listed, or not readable "
                        outcome.error += "with this token)"
                except GitTimeout as exc:
                    outcome.error = (
                        f"{exc}: not finished within --repo-timeout "
                        f"{self.config.git.repo_timeout_s or 0:.0f} s (a server that sends without "
                        "end, or a slow link: raise --repo-timeout); the mirror's refs are as "
                        "before this run"
                    )
                except GitError as exc:
                    outcome.error = str(exc)
                except OSError as exc:
                    outcome.error = f"{type(exc).__name__}: {exc}"
                except asyncio.CancelledError:
                    if not self._aborting:
                        raise
                    outcome.error = "abandoned at the end of the grace period; the mirror's "
                    outcome.error += "refs are as before this run"
                except Exception as exc:  # a bug or an input nobody foresaw: this repo only
                    log.debug("repository_failed_unexpectedly", exc_info=True)
                    outcome.error = f"unexpected {type(exc).__name__}: {exc} (please report this)"
                finally:
                    self._in_flight.discard(task)
            outcome.duration_s = round(time.monotonic() - started, 3)
            self._log(outcome)
            self.stats.count(outcome)
            return outcome

    async def _fetch(self, target: _Target, outcome: RepoOutcome) -> None:
        limit = self.config.git.repo_timeout_s
        deadline = time.monotonic() + limit if limit else None
        result = await self.git.mirror(
            target.url,
            target.path,
            pull_refs=self.config.pull_refs and target.kind == "repository",
            stamp=self.stamp,
            default_branch=target.default_branch,
            deadline=deadline,
        )
        outcome.created = result.created
        outcome.refs_updated = len(result.changes)
        outcome.ref_changes = [
            c.to_json() for c in result.changes if c.kind != "created" or not result.created
        ]
        if self.config.lfs:
            outcome.lfs_objects = await self.git.fetch_lfs(target.path, target.url, deadline)
        # Only now: an LFS fetch that fails leaves the repository failed.
        outcome.status = "copied" if result.created or result.changes else "unchanged"

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
            if change["kept_as"]:
                bound.warning("ref_rewritten_at_source", **_ref_fields(change))


def _ref_fields(change: dict[str, str | None]) -> dict[str, str | None]:
    return {"ref": change["ref"], "change": change["change"], "kept_as": change["kept_as"]}


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


async def _check_tools(git: Git, lfs: bool) -> None:
    if not lfs:
        return
    try:
        await git.run("lfs", "version")
    except GitError:
        raise UsageError(
            "--lfs needs git-lfs: install Debian's git-lfs package (apt-get install git-lfs)"
        ) from None


async def run_repos(options: ReposOptions) -> int:
    from github_org_backup.github.repos import (
        GitHubRepos,  # PyGithub is heavy: only this command needs it
    )

    config = options.config
    git = Git(config.git)
    await _check_tools(git, config.lfs)
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
        outcomes, wanted = _screened(wanted, config)
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
    targets, clashes = _one_per_folder(mirrorer.targets(wanted))
    for outcome in clashes:
        log.error("repository_failed", repository=outcome.repository, error=outcome.error)
        stats.count(outcome)
    outcomes += clashes
    stats.total = len(targets) + len(outcomes)
    results = await _run_with_signals(mirrorer, targets, options)
    stats.total = len(targets) + len(outcomes)
    extra |= {"backup_ref_prefix": f"refs/backup/{stamp}/", "interrupted": mirrorer.stopping}
    return _finish(options, stats, outcomes + results, extra, failed=False)


def _one_per_folder(targets: list[_Target]) -> tuple[list[_Target], list[RepoOutcome]]:
    """Targets with folders of their own; a wiki whose folder a repository named REPO.wiki
    takes (or a second spelling of one folder) fails, named, instead of sharing it."""
    taken: dict[str, str] = {}
    kept, clashes = [], []
    for target in sorted(targets, key=lambda t: t.kind != "repository"):
        folder = str(target.path).lower()
        if folder in taken:
            error = f"its mirror folder {target.path.name} is taken by {taken[folder]}"
            clashes.append(RepoOutcome(target.name, "", target.kind, "failed", error=error))
        else:
            taken[folder] = target.name
            kept.append(target)
    return kept, clashes


def _screened(repos: list[Repo], config: ReposConfig) -> tuple[list[RepoOutcome], list[Repo]]:
    """The listings refused (each its own failure, with the reason) and the ones to mirror.

    When every clone URL names one same other host, the API is most likely a GitHub Enterprise
    Server known by another name: a configuration error naming both hosts, before any fetch.
    """
    _refuse_one_foreign_host(repos, config)
    refused, kept, folders = [], [], set()
    for repo in repos:
        problem = repo.problem(config.owner.name, config.git_host)
        folder = f"{repo.owner}/{repo.name}".lower()
        if problem is None and folder in folders:
            problem = f"listed twice (as {repo.full_name}): one mirror folder, the first kept"
        if problem:
            refused.append(RepoOutcome(repo.full_name, "", "repository", "failed", error=problem))
        else:
            folders.add(folder)
            kept.append(repo)
    return refused, kept


def _hostname(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:  # not a URL at all: git.py refuses it, naming why
        return ""


def _refuse_one_foreign_host(repos: list[Repo], config: ReposConfig) -> None:
    from github_org_backup.errors import ApiHostMismatch

    host = config.git_host
    usable = [r for r in repos if not r.unusable]
    named = {_hostname(r.clone_url) for r in usable}
    # One repository alone pointing elsewhere is that repository's failure, not a setting.
    if (
        len(usable) > 1
        and len(named) == 1
        and "" not in named
        and not any(host.allows(r.clone_url) for r in usable)
    ):
        (other,) = named
        raise ApiHostMismatch(
            f"every repository the GitHub API at {config.api_url} lists has its clone URL on "
            f"{other or '(no host)'}, not on {host.hostname}: if {other} is the same GitHub "
            "Enterprise Server under another name, set --github-api-url / GITHUB_API_URL to "
            f"its API there (e.g. https://{other}/api/v3); nothing was fetched, and no token was "
            f"sent to {other}"
        )


async def _run_with_signals(
    mirrorer: RepoMirrorer, targets: list[_Target], options: ReposOptions
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
    root = options.root
    mirrors = [
        p
        for p in sorted(root.glob("*/*.git"))
        if (p / "HEAD").is_file() and _selected(p, root, list(options.globs))
    ]
    try:
        git = Git(options.git)
    except GitMissing as exc:
        raise UsageError(str(exc)) from None
    slots = asyncio.Semaphore(options.concurrency)

    async def check(path: Path) -> list[str]:
        async with slots:
            name = str(path.relative_to(root))
            problems = [f"{name}: {p}" for p in await git.fsck(path, deep=options.deep)]
            if options.compares:
                problems += [f"{name}: {p}" for p in await _compare(git, path, options)]
            return problems

    found = await asyncio.gather(*(check(p) for p in mirrors))
    problems = [p for group in found for p in group]
    for problem in problems:
        print(problem, flush=True)
    summary = {
        "mirrors": len(mirrors),
        "problems": len(problems),
        "deep": options.deep,
        "compared_with_source": options.compares,
    }
    log.info("verify_finished", backup=str(root), **summary)
    if options.output.report:
        write_report(options.output.report, {"summary": summary, "problems": problems})
    if not mirrors:
        log.error("verify_found_nothing", backup=str(root))
        return EXIT_FAILED
    return EXIT_FAILED if problems else EXIT_OK


def _selected(path: Path, root: Path, globs: list[str]) -> bool:
    name = str(path.relative_to(root)).removesuffix(".git")
    return not globs or any(fnmatch.fnmatchcase(name, g) for g in globs)


async def _compare(git: Git, path: Path, options: VerifyReposOptions) -> list[str]:
    """Refs that differ between the mirror and its source (``git ls-remote``)."""
    timeout_s = options.timeout_s
    try:
        _, url = await git.run("config", "--get", "remote.origin.url", git_dir=path)
        url = url.strip()
        host = options.git.token_host
        refusal = host.refusal(url, f"/{path.parent.name}/{path.name}") if host else None
        if refusal:
            return [f"not compared with the source, and the token not sent: {refusal}"]
        local = await git.refs(path, ["refs/heads/", "refs/tags/", "refs/pull/"])
        prefixes = ["refs/heads/", "refs/tags/"]
        if any(r.startswith("refs/pull/") for r in local):
            prefixes.append("refs/pull/")
        remote = await git.remote_refs(url, prefixes, timeout_s=timeout_s)
    except GitTimeout:
        return [f"cannot compare with the source: no answer within {timeout_s:.0f} s"]
    except GitError as exc:
        return [f"cannot compare with the source: {exc}"]
    local = {r: s for r, s in local.items() if r.startswith(tuple(prefixes))}
    problems = []
    for ref in sorted(local.keys() | remote.keys()):
        mine, theirs = local.get(ref), remote.get(ref)
        if mine == theirs:
            continue
        if mine is None:
            problems.append(f"{ref} is at the source ({theirs}) but not in the mirror")
        elif theirs is None:
            problems.append(f"{ref} is in the mirror ({mine}) but no longer at the source")
        else:
            problems.append(f"{ref} is {theirs} at the source, {mine} in the mirror")
    return problems
