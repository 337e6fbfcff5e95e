"""Discover an owner's container packages and their tagged versions through PyGithub.

PyGithub has no packages API, so this uses its requester and PaginatedList directly. PyGithub
is not thread-safe: every call runs on one worker thread, so the event loop can copy earlier
packages while later ones are still being listed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from collections.abc import AsyncIterator, Callable
from typing import Any

import requests
import structlog
from github import Auth, Github, GithubException, GithubRetry
from github.GithubObject import NonCompletableGithubObject
from github.PaginatedList import PaginatedList

from backup.errors import BackupError, InvalidReference, UsageError
from backup.packages import Owner, Package
from backup.reference import validate_digest, validate_tag

log = structlog.get_logger("backup.github")

PAGE_SIZE = 100
# GitHub answers 400 once per_page * page passes 10,000 on the org package list.
LIST_CAP = 10_000
_REQUEST_INTERVAL_S = 0.1  # serial and gentle: well under the secondary rate limits


class GitHubAccessError(UsageError):
    """GitHub refused the token or does not know the owner: the user must fix the setup."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class GitHubUnavailable(BackupError):
    """The GitHub API could not be reached or kept failing."""


class _Json(NonCompletableGithubObject):
    """A PyGithub object that keeps the raw JSON; packages have no class of their own."""

    def _initAttributes(self) -> None:
        pass

    def _useAttributes(self, attributes: dict[str, Any]) -> None:
        pass


class GitHubPackages:
    """The packages of one owner. All PyGithub calls run on a single worker thread."""

    def __init__(
        self,
        owner: Owner,
        token: str,
        api_url: str,
        *,
        retries: int = 6,
        max_rate_limit_wait_s: float = 900.0,
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
                max_rate_limit_wait=max_rate_limit_wait_s,
            ),
            seconds_between_requests=request_interval_s,
        )
        self._requester = self._github.requester
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="github-api")
        self.pages_requested = 0
        self.truncated = False

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._github.close()

    @property
    def rate_limit_remaining(self) -> int | None:
        remaining, _ = self._requester.rate_limiting
        return remaining if remaining >= 0 else None

    async def _call(self, function: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(function, *args))

    def _paginate(self, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
        """Every item of a paginated list: per_page=100, following Link rel="next"."""
        items: list[dict[str, Any]] = []
        listing: PaginatedList[_Json] = PaginatedList(_Json, self._requester, path, params)
        original = self._requester.requestJsonAndCheck

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.pages_requested += 1
            return original(*args, **kwargs)

        self._requester.requestJsonAndCheck = counted  # type: ignore[method-assign]
        try:
            items.extend(element.raw_data for element in listing)
        except GithubException as exc:
            if exc.status == 400 and len(items) >= LIST_CAP:
                self.truncated = True
                log.error(
                    "package_list_truncated",
                    owner=str(self.owner),
                    listed=len(items),
                    cap=LIST_CAP,
                    hint="GitHub lists at most 10,000 packages; "
                    "split the backup with --include-package",
                )
            else:
                raise _access_error(exc, self.owner, path) from None
        except requests.RequestException as exc:
            raise GitHubUnavailable(
                f"cannot reach the GitHub API at {self._api_url}: {type(exc).__name__}"
            ) from None
        finally:
            self._requester.requestJsonAndCheck = original  # type: ignore[method-assign]
        return items

    def _package_names(self) -> list[str]:
        items = self._paginate(self.owner.packages_path(), {"package_type": "container"})
        return sorted({str(item["name"]) for item in items if "name" in item})

    def _package(self, name: str) -> Package | None:
        try:
            versions = self._paginate(self.owner.versions_path(name), {})
        except GitHubAccessError as exc:
            if exc.status == 404:  # deleted between listing and now
                log.warning("package_vanished", package=name)
                return None
            raise
        tags: dict[str, str] = {}
        untagged = 0
        for version in versions:
            digest = str(version.get("name", ""))
            found = ((version.get("metadata") or {}).get("container") or {}).get("tags") or []
            try:
                validate_digest(digest)
                for tag in found:
                    tags[validate_tag(str(tag))] = digest
            except InvalidReference as exc:
                log.warning("version_skipped", package=name, error=str(exc))
                continue
            untagged += not found  # children of tagged indexes: copied through their parent
        return Package(name, tags, untagged)

    async def packages(self, wanted: Callable[[str], bool]) -> AsyncIterator[Package]:
        """Yield each wanted package as soon as its versions are listed."""
        names = await self._call(self._package_names)
        log.info("packages_listed", owner=str(self.owner), count=len(names))
        for name in names:
            if not wanted(name):
                continue
            package = await self._call(self._package, name)
            if package is not None:
                yield package


def _access_error(exc: GithubException, owner: Owner, path: str) -> BackupError:
    status = exc.status
    if status == 401:
        return GitHubAccessError(
            "GitHub rejected the token (HTTP 401): check that GITHUB_TOKEN or "
            "--github-token-file holds a valid, unexpired personal access token",
            status=status,
        )
    if status in (400, 403):
        return GitHubAccessError(
            f"GitHub refused to list packages of {owner} (HTTP {status}): this needs a classic "
            "personal access token with the read:packages scope. The Actions GITHUB_TOKEN "
            "cannot list organisation packages, and fine-grained tokens do not support packages",
            status=status,
        )
    if status == 404:
        what = "organisation" if owner.kind == "orgs" else "user"
        return GitHubAccessError(
            f"{what} {owner.name!r} not found, or not visible to this token (HTTP 404 on {path})",
            status=status,
        )
    return GitHubUnavailable(f"GitHub API answered HTTP {status} on {path}")
