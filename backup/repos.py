"""Discover an owner's git repositories through PyGithub.

An organisation's list (``type=all``) holds its public, private, internal and archived
repositories. A user's own private repositories are listed only by ``/user/repos``, so when the
token belongs to that user the authenticated listing is used. PyGithub is not thread-safe: every
call runs on one worker thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import fnmatch
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
import structlog
from github import Auth, Github, GithubException, GithubRetry

from backup.errors import BackupError, UsageError
from backup.packages import Owner

log = structlog.get_logger("backup.repos")

PAGE_SIZE = 100
_REQUEST_INTERVAL_S = 0.1
# GitHub's grammar for owner and repository names; also keeps every path below --dest.
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")


class RepositoryListError(UsageError):
    """GitHub refused the token or does not know the owner: the user must fix the setup."""


class GitHubUnavailable(BackupError):
    """The GitHub API could not be reached or kept failing."""


@dataclass(frozen=True)
class Repo:
    owner: str
    name: str
    clone_url: str
    fork: bool = False
    archived: bool = False
    visibility: str = "private"
    has_wiki: bool = False
    default_branch: str | None = None

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def wiki_url(self) -> str:
        return self.clone_url.removesuffix(".git") + ".wiki.git"

    def problem(self) -> str | None:
        """Why this listing cannot be mirrored safely, or None."""
        for part in (self.owner, self.name):
            if not _NAME.fullmatch(part) or part in (".", ".."):
                return f"name {part!r} is not a GitHub owner or repository name"
        url = urlsplit(self.clone_url)
        if url.scheme not in ("https", "http") or not url.hostname:
            return f"clone URL {self.clone_url!r} is not an http(s) URL"
        if url.username or url.password:
            return "clone URL carries credentials; refusing to store it in the mirror"
        return None


@dataclass(frozen=True)
class RepoFilter:
    """``--include-forks``, ``--include-repo`` and ``--exclude-repo`` (globs over names)."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    include_forks: bool = False

    def allows(self, repo: Repo) -> bool:
        if repo.fork and not self.include_forks:
            return False
        names = (repo.name, repo.full_name)
        if self.include and not any(fnmatch.fnmatchcase(n, p) for n in names for p in self.include):
            return False
        return not any(fnmatch.fnmatchcase(n, p) for n in names for p in self.exclude)


class GitHubRepos:
    """The repositories of one owner. All PyGithub calls run on a single worker thread."""

    def __init__(
        self,
        owner: Owner,
        token: str,
        api_url: str,
        *,
        retries: int = 6,
        request_interval_s: float = _REQUEST_INTERVAL_S,
    ) -> None:
        self.owner = owner
        self._api_url = api_url.rstrip("/")
        self._github = Github(
            auth=Auth.Token(token),
            base_url=self._api_url,
            per_page=PAGE_SIZE,
            timeout=30,
            retry=GithubRetry(
                total=retries,
                backoff_factor=1.0,
                backoff_jitter=0.5,
                status_forcelist=[408, 429, 500, 502, 503, 504],
                max_rate_limit_wait=900,
            ),
            seconds_between_requests=request_interval_s,
        )
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="github-api")

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._github.close()

    @property
    def rate_limit_remaining(self) -> int | None:
        remaining, _ = self._github.requester.rate_limiting
        return remaining if remaining >= 0 else None

    async def _call(self, function: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function)

    async def repositories(self) -> list[Repo]:
        """Every repository of the owner, sorted by name."""
        repos: list[Repo] = await self._call(self._list)
        log.info("repositories_listed", owner=str(self.owner), count=len(repos))
        return sorted(repos, key=lambda r: r.full_name.lower())

    def _list(self) -> list[Repo]:
        try:
            return [_repo(item) for item in self._listing()]
        except GithubException as exc:
            raise _access_error(exc, self.owner) from None
        except requests.RequestException as exc:
            raise GitHubUnavailable(
                f"cannot reach the GitHub API at {self._api_url}: {type(exc).__name__}"
            ) from None

    def _listing(self) -> Iterable[Any]:
        if self.owner.kind == "orgs":
            return self._github.get_organization(self.owner.name).get_repos(type="all")
        me = self._github.get_user()
        if me.login.lower() == self.owner.name.lower():
            # Only the authenticated listing includes the user's private repositories.
            return me.get_repos(affiliation="owner")
        return self._github.get_user(self.owner.name, lazy=True).get_repos(type="owner")


def _repo(item: Any) -> Repo:
    return Repo(
        owner=str(item.owner.login),
        name=str(item.name),
        clone_url=str(item.clone_url),
        fork=bool(item.fork),
        archived=bool(item.archived),
        visibility=str(item.visibility or ("private" if item.private else "public")),
        has_wiki=bool(item.has_wiki),
        default_branch=str(item.default_branch) if item.default_branch else None,
    )


def _access_error(exc: GithubException, owner: Owner) -> BackupError:
    status = exc.status
    if status == 401:
        return RepositoryListError(
            "GitHub rejected the token (HTTP 401): check that GITHUB_TOKEN or "
            "--github-token-file holds a valid, unexpired personal access token"
        )
    if status == 403:
        return RepositoryListError(
            f"GitHub refused to list the repositories of {owner} (HTTP 403): use a token with "
            "the repo scope (classic) or Contents: read on every repository (fine-grained), "
            "authorised for the organisation's SAML SSO if it has one"
        )
    if status == 404:
        what = "organisation" if owner.kind == "orgs" else "user"
        return RepositoryListError(
            f"{what} {owner.name!r} not found, or not visible to this token (HTTP 404)"
        )
    return GitHubUnavailable(f"GitHub API answered HTTP {status} listing repositories of {owner}")
