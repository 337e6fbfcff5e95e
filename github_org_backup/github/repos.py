"""Discover an owner's git repositories through PyGithub.

An organisation's list (``type=all``) holds its public, private, internal and archived
repositories. A user's own private repositories are listed only by ``/user/repos``, so when the
token belongs to that user the authenticated listing is used; a GitHub App installed on a user
lists what it was granted with ``/installation/repositories``. The credential is an
``Identity`` (github.identity): a token, or an App whose installation token every request asks
for anew, so a listing outlives the token it started with. PyGithub is not thread-safe: every
call runs on one worker thread.

The listing is read as raw JSON, page by page, never through PyGithub's lazy objects: a missing
field would make it fetch ``/repos/{owner}/{repo}`` (or any ``url`` the answer names) behind our
back. Each answer goes through ``github.http.BoundedConnection`` (bytes, time, redirects only to
the same origin; GITHUB_API_MAX_PAGE_BYTES, GITHUB_API_MAX_PAGES, read by settings into the
``limits`` given), and a next-page link must stay on the API the user named. PyGithub's own log
lines come out through the tool's logging, as JSON off a terminal. Every entry is checked
(names, owner, clone URL host) before any git runs; one that fails is that repository's own
failure.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import quote, urlsplit

import requests
import structlog
import urllib3
from github import Github, GithubException, GithubRetry

from github_org_backup.base.logs import adopt_library_logs
from github_org_backup.errors import (
    ApiHostMismatch,
    BackupError,
    GitHubAccessError,
    GitHubAnswerInvalid,
    GitHubUnavailable,
)
from github_org_backup.github.http import (
    ACCEPT,
    API_VERSION,
    DEFAULT_RETRIES,
    PAGE_SIZE,
    ApiLimits,
    BoundedConnection,
    parse_page,
)
from github_org_backup.github.identity import TokenIdentity
from github_org_backup.github.retry import RETRY_STATUSES
from github_org_backup.model.packages import Owner

if TYPE_CHECKING:
    from github_org_backup.github.identity import Identity

log = structlog.get_logger("github_org_backup.github.repos")

_REQUEST_INTERVAL_S = 0.1
# GitHub's grammar for owner and repository names; also keeps every path below --dest.
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")


class GitHost(Protocol):
    """The git host a clone URL must be on (``repos.host.GitHost``)."""

    def refusal(self, url: str, path: str) -> str | None:
        """Why ``url`` is not the repository ``path`` (/OWNER/REPO.git) on this host, or None."""
        ...


@dataclass(frozen=True)
class Repo:
    owner: str
    name: str
    clone_url: str
    fork: bool = False
    archived: bool = False
    visibility: str = "private"
    has_wiki: bool = False
    has_issues: bool = True  # GitHub answers 410 for the issues of one that has none
    default_branch: str | None = None
    unusable: str | None = None  # why the listing's entry cannot be mirrored at all

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def wiki_url(self) -> str:
        return self.clone_url.removesuffix(".git") + ".wiki.git"

    def problem(self, owner: str, host: GitHost) -> str | None:
        """Why this listing cannot be mirrored under DEST/``owner`` from ``host``, or None."""
        if self.unusable:
            return self.unusable
        for part in (self.owner, self.name):
            if not _NAME.fullmatch(part) or part in (".", ".."):
                return f"name {part!r} is not a GitHub owner or repository name"
        if self.owner.lower() != owner.lower():
            return (
                f"listed with owner {self.owner!r}, not {owner!r}: refused, nothing is written "
                f"outside {owner}/"
            )
        return host.refusal(self.clone_url, f"/{self.owner}/{self.name}.git")


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
        identity: Identity | str,
        api_url: str,
        *,
        retries: int = DEFAULT_RETRIES,
        request_interval_s: float = _REQUEST_INTERVAL_S,
        limits: ApiLimits | None = None,
    ) -> None:
        adopt_library_logs()  # importing PyGithub gave its logger a plain handler of its own
        self.owner = owner
        self.identity = TokenIdentity(identity) if isinstance(identity, str) else identity
        self._api_url = api_url.rstrip("/")
        self._limits = limits or ApiLimits()
        retry = GithubRetry(
            total=retries,
            backoff_factor=1.0,
            backoff_jitter=0.5,
            status_forcelist=list(RETRY_STATUSES),
            max_rate_limit_wait=900,
        )
        self._github = Github(
            auth=self.identity.auth(),  # for an App, the current installation token each time
            base_url=self._api_url,
            per_page=PAGE_SIZE,
            timeout=30,
            retry=retry,
            seconds_between_requests=request_interval_s,
            api_version=API_VERSION,  # PyGithub sends none unless told
        )
        # Every request goes through this connection, which bounds what is read of an answer.
        self._connection = BoundedConnection(
            self._api_url, retry=retry, timeout_s=30, limits=self._limits
        )
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="github-api")

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._connection.close()
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
            return [_repo(item, index) for index, item in enumerate(self._listing())]
        except GithubException as exc:
            raise _access_error(exc, self.owner, self.identity.kind) from None
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            raise GitHubUnavailable(
                f"cannot reach the GitHub API at {self._api_url}: {type(exc).__name__}"
            ) from None
        except RuntimeError as exc:  # PyGithub refusing a redirect to another host or scheme
            raise ApiHostMismatch(
                f"the GitHub API at {self._api_url} answered with a redirect PyGithub refuses "
                f"({exc}); set --github-api-url / GITHUB_API_URL to the URL it names"
            ) from None

    def _get(self, path: str, parameters: dict[str, Any] | None = None) -> tuple[Any, str | None]:
        """GET ``path`` (below the API URL): the JSON and the next page's path, if any."""
        requester = self._github.requester
        url = self._api_url + path.partition("?")[0]
        self._connection.begin()
        status, headers, body = requester.requestJson(
            "GET", path, parameters, {"Accept": ACCEPT}, cnx=cast(Any, self._connection)
        )
        try:
            data = parse_page(body, self._limits, url) if body else None
        except ValueError:
            data = {"message": body[:200]}
        if status >= 400:
            raise requester.createException(
                status, headers, data if isinstance(data, dict) else {"data": data}
            )
        return data, self._next_path(headers)

    def _next_path(self, headers: dict[str, Any]) -> str | None:
        link = str(headers.get("link") or "")
        for part in link.split(","):
            target, _, rel = part.partition(";")
            if re.search(r'rel="?next"?', rel):
                return self._same_api(target.strip().removeprefix("<").removesuffix(">"))
        return None

    def _same_api(self, url: str) -> str:
        """The path below the API URL of a next-page ``url``; refused if it leaves the API."""
        api = urlsplit(self._api_url)
        try:
            page = urlsplit(url)
        except ValueError:
            raise ApiHostMismatch(
                f"the GitHub API at {self._api_url} links its next page at {url[:100]!r}, "
                "which is not a URL: stopped"
            ) from None
        try:
            same = (
                page.scheme == api.scheme
                and page.hostname == api.hostname
                and _port(page) == _port(api)
                and (page.path + "/").startswith(api.path.rstrip("/") + "/")
            )
        except ValueError:
            same = False
        if not same:
            raise ApiHostMismatch(
                f"the GitHub API at {self._api_url} (host {api.hostname}) links its next page "
                f"on {page.scheme}://{page.netloc or '?'}: if that is the same GitHub Enterprise "
                "Server under another name, set --github-api-url / GITHUB_API_URL to it; the "
                f"token is sent only to {api.hostname}"
            )
        rest = page.path[len(api.path.rstrip("/")) :]
        return rest + (f"?{page.query}" if page.query else "")

    def _pages(self, path: str, parameters: dict[str, Any], key: str | None = None) -> list[Any]:
        """Every item of a paginated list; with ``key``, each page is an object whose ``key``
        holds the page's items (``/installation/repositories``)."""
        items: list[Any] = []
        next_path: str | None = path
        params: dict[str, Any] | None = {"per_page": PAGE_SIZE} | parameters
        for _ in range(self._limits.max_pages):
            if next_path is None:
                return items
            data, next_path = self._get(next_path, params)
            params = None  # a next link carries its own query
            if key is not None and isinstance(data, dict):
                data = data.get(key)
            if not isinstance(data, list):
                raise GitHubAnswerInvalid(
                    f"the GitHub API at {self._api_url} answered {path} with "
                    f"{type(data).__name__}, not a list of repositories"
                )
            items += data
        if next_path is not None:
            raise GitHubAnswerInvalid(
                f"the GitHub API at {self._api_url} listed more than {self._limits.max_pages} "
                f"pages of repositories for {self.owner} (GITHUB_API_MAX_PAGES): refusing the rest"
            )
        return items

    def _listing(self) -> list[Any]:
        name = quote(self.owner.name, safe="")
        if self.owner.kind == "orgs":
            return self._pages(f"/orgs/{name}/repos", {"type": "all"})
        if self.identity.kind == "app":
            # An installation token has no /user; the installation lists what it may read.
            return self._pages("/installation/repositories", {}, key="repositories")
        me, _ = self._get("/user")
        if isinstance(me, dict) and str(me.get("login", "")).lower() == self.owner.name.lower():
            # Only the authenticated listing includes the user's private repositories.
            return self._pages("/user/repos", {"affiliation": "owner"})
        return self._pages(f"/users/{name}/repos", {"type": "owner"})


def _port(url: Any) -> int | None:
    return url.port or {"http": 80, "https": 443}.get(url.scheme)


def _repo(item: Any, index: int) -> Repo:
    """A listing entry as a Repo; a malformed one comes back ``unusable`` with the reason."""
    if not isinstance(item, dict):
        return Repo("?", f"entry-{index}", "", unusable=f"listing entry {index} is not an object")
    owner = item.get("owner")
    login = owner.get("login") if isinstance(owner, dict) else None
    name, clone_url = item.get("name"), item.get("clone_url")
    shown = f"{login if isinstance(login, str) else '?'}/{name if isinstance(name, str) else '?'}"
    missing = [
        key
        for key, value in (("owner.login", login), ("name", name), ("clone_url", clone_url))
        if not isinstance(value, str) or not value
    ]
    if missing:
        return Repo(
            str(login) if isinstance(login, str) else "?",
            str(name) if isinstance(name, str) else f"entry-{index}",
            "",
            unusable=f"listing entry {shown} has no {', '.join(missing)}",
        )
    visibility = item.get("visibility")
    if not isinstance(visibility, str):
        visibility = "public" if item.get("private") is False else "private"
    branch = item.get("default_branch")
    return Repo(
        owner=str(login),
        name=str(name),
        clone_url=str(clone_url),
        fork=item.get("fork") is True,
        archived=item.get("archived") is True,
        visibility=visibility,
        has_wiki=item.get("has_wiki") is True,
        has_issues=item.get("has_issues") is not False,
        default_branch=branch if isinstance(branch, str) and branch else None,
    )


def _access_error(exc: GithubException, owner: Owner, kind: str = "token") -> BackupError:
    status = exc.status
    said = _their_words(exc)
    if kind == "app" and status in (401, 403, 404):
        return _app_access_error(status, said, owner)
    if status == 401:
        return GitHubAccessError(
            "GitHub rejected the token (HTTP 401): check that GITHUB_TOKEN or "
            f"--github-token-file holds a valid, unexpired personal access token{said}"
        )
    if status == 403:
        return GitHubAccessError(
            f"GitHub refused to list the repositories of {owner} (HTTP 403){said}: use a token "
            "with the repo scope (classic) or Contents: read on every repository (fine-grained), "
            "authorised for the organisation's SAML SSO if it has one"
        )
    if status == 404:
        what = "organisation" if owner.kind == "orgs" else "user"
        return GitHubAccessError(
            f"{what} {owner.name!r} not found, or not visible to this token (HTTP 404)"
        )
    return GitHubUnavailable(
        f"GitHub API answered HTTP {status} listing repositories of {owner}{said}"
    )


def _app_access_error(status: int, said: str, owner: Owner) -> BackupError:
    what = "organisation" if owner.kind == "orgs" else "user"
    if status == 401:
        return GitHubAccessError(
            f"GitHub rejected the GitHub App's installation token (HTTP 401){said}: the "
            "installation may have been removed or suspended during the run; run again"
        )
    if status == 403:
        return GitHubAccessError(
            f"GitHub refused the GitHub App the repositories of {owner} (HTTP 403){said}: "
            "give the App the repository permissions Metadata: read and Contents: read, and "
            "accept the new permissions on the installation"
        )
    return GitHubAccessError(
        f"{what} {owner.name!r} not found, or not visible to the GitHub App's installation "
        "(HTTP 404): check --org/--user and that the App is installed there"
    )


def _their_words(exc: GithubException) -> str:
    """GitHub's own message, on one line and short: `` (GitHub: ...)``, or nothing."""
    data = exc.data if isinstance(exc.data, dict) else {}
    message = data.get("message")
    if not isinstance(message, str) or not message.strip():
        return ""
    flat = " ".join("".join(c if c.isprintable() else " " for c in message).split())
    return f" (GitHub: {flat[:300]})"
