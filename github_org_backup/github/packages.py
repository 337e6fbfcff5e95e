"""Discover an owner's container packages and their tagged versions through PyGithub.

PyGithub has no packages API, so each page is asked for through ``github.client`` (paced,
bounded, retried, on one worker thread, so the event loop can copy earlier packages while later
ones are still being listed), and counted as it is read.

What can go wrong, and whose failure it is (the messages are ``github.refusals``'):

- the package list cannot be read (token rejected, missing scope, SAML SSO, IP allow list,
  unknown owner, API unreachable, persistent 5xx, an answer out of bounds or of shape, pages
  past GitHub's own 10,000-package cap): nothing can be discovered, the whole run fails;
- a rate limit that resets later than the run is willing to wait, or the API becoming
  unreachable: discovery stops, and the packages found so far are still backed up;
- anything else on one package's versions (403, 404, a 5xx that outlasts the retries, a page
  out of bounds or of shape, more pages than its version count fills): only that package
  fails, as a ``FailedPackage``; so does a malformed entry of the package list;
- a malformed version or tag: skipped and named, the package's other versions are kept.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Literal

import structlog

from github_org_backup.errors import (
    GitHubAccessError,
    GitHubAnswerInvalid,
    GitHubRefused,
    OverLimit,
    TooManyPages,
)
from github_org_backup.github.cache import (
    CachedPackage,
    DiscoveryCache,
    Listed,
    ListPage,
    listed_entry,
)
from github_org_backup.github.client import GitHubClient, Page
from github_org_backup.github.http import DEFAULT_RETRIES, PAGE_SIZE, ApiLimits
from github_org_backup.github.refusals import list_error, too_many_pages
from github_org_backup.github.retry import DEFAULT_MAX_RATE_LIMIT_WAIT_S
from github_org_backup.model.packages import FailedPackage, Owner, Package, TagCollector

log = structlog.get_logger("github_org_backup.github.packages")

# GitHub answers 400 once per_page * page passes 10,000 on the org package list.
LIST_CAP = 10_000
# Serial requests, started at most 850 a minute: under the secondary rate limit of 900 points
# a minute per endpoint, where a GET is one point ("Rate limits for the REST API").
_REQUEST_INTERVAL_S = 60 / 850
# A warm run checks, page by page, at least this share of the unchanged packages' pages (and at
# least MIN_REVALIDATE_PAGES), so that every package is checked every REVALIDATE_ROUNDS runs.
REVALIDATE_ROUNDS = 10
MIN_REVALIDATE_PAGES = 100


class GitHubPackages:
    """The packages of one owner. All PyGithub calls run on a single worker thread.

    With a ``DiscoveryCache`` from the last run (``use_cache``), a warm run asks only what may
    have changed:

    - the package list, page by page with ``If-None-Match``: a 304 costs nothing against the
      primary rate limit, and any change in it (a package added, deleted or recreated, or its
      ``version_count`` or ``updated_at`` moving) comes back as a 200;
    - the versions of each package whose list entry changed, read in full;
    - the versions of a rotating slice of the unchanged packages, page by page with
      ``If-None-Match``, so that every package is checked against GitHub every few runs, even
      for a change its list entry does not show (a tag moved to a version that already existed).

    Every other package is taken from the cache without a request.
    """

    def __init__(
        self,
        owner: Owner,
        token: str,
        api_url: str,
        *,
        retries: int = DEFAULT_RETRIES,
        max_rate_limit_wait_s: float = DEFAULT_MAX_RATE_LIMIT_WAIT_S,
        request_interval_s: float = _REQUEST_INTERVAL_S,
        timeout_s: float = 30,
        revalidate_rounds: int = REVALIDATE_ROUNDS,
        revalidate_min_pages: int = MIN_REVALIDATE_PAGES,
        limits: ApiLimits | None = None,
    ) -> None:
        self.owner = owner
        self._client = GitHubClient(
            owner,
            token,
            api_url,
            retries=retries,
            max_rate_limit_wait_s=max_rate_limit_wait_s,
            request_interval_s=request_interval_s,
            timeout_s=timeout_s,
            limits=limits or ApiLimits(),
        )
        self._api_url = self._client.api_url
        self._rounds = revalidate_rounds  # 0: never revalidate an unchanged package
        self._min_pages = revalidate_min_pages
        self._cache: DiscoveryCache | None = None
        self._learned: DiscoveryCache | None = None
        self._failed: set[str] = set()
        self._malformed: list[FailedPackage] = []  # package list entries out of shape
        self.cache_state: Literal["off", "absent", "used"] = "off"
        self.packages_from_cache = 0
        self.packages_revalidated = 0
        self.packages_read = 0
        self.truncated = False

    @property
    def limits(self) -> ApiLimits:
        """How much of GitHub's answers is read (GITHUB_API_MAX_PAGE_BYTES and
        GITHUB_API_MAX_PAGES, through settings)."""
        return self._client.limits

    @property
    def pages_requested(self) -> int:
        return self._client.pages_requested

    @property
    def pages_not_modified(self) -> int:
        return self._client.pages_not_modified

    @property
    def rate_limit_remaining(self) -> int | None:
        return self._client.rate_limit_remaining

    def stop(self) -> None:
        """Abandon discovery now: the call in flight is not waited for."""
        self._client.stop()

    def close(self) -> None:
        self._client.close()

    # The cache

    def use_cache(self, cache: DiscoveryCache | None) -> None:
        """Start from what the last run learned (None: nothing, list everything)."""
        if cache is not None and (cache.owner, cache.api_url) != DiscoveryCache.key(
            self.owner, self._api_url
        ):
            cache = None
        self._cache = cache
        self.cache_state = "absent" if cache is None else "used"

    def learned_cache(self) -> DiscoveryCache | None:
        """What this run learned, to keep for the next; None if the package list was not read.

        Listed packages this run did not reach (discovery stopped, or a filter left them out)
        keep the last run's entry; a package whose versions failed, or that left the list,
        has none.
        """
        learned = self._learned
        if learned is None:
            return None
        if self._cache is not None:
            listed = {item.name for page in learned.list_pages for item in page.items}
            for name, entry in self._cache.packages.items():
                if name in listed and name not in learned.packages and name not in self._failed:
                    learned.packages[name] = entry
        return learned

    def cache_summary(self) -> dict[str, Any]:
        return {
            "discovery_cache": self.cache_state,
            "github_requests_not_modified": self.pages_not_modified,
            "packages_from_cache": self.packages_from_cache,
            "packages_revalidated": self.packages_revalidated,
            "packages_read": self.packages_read,
        }

    def _reusable(self, listed: Listed) -> CachedPackage | None:
        """The cached versions, if the list says the same of the package as when they were read."""
        if self._cache is None:
            return None
        cached = self._cache.packages.get(listed.name)
        if cached is None or cached.listed != listed:
            return None
        if listed.version_count is None and listed.updated_at is None:
            return None  # nothing in the list would show a change
        return cached

    def _revalidation(self, listed: list[Listed], wanted: Callable[[str], bool]) -> set[str]:
        """Unchanged packages to check page by page this run: those after the last run's
        cursor, for at least 1/rounds of all their pages, so each is checked every few runs."""
        if self._cache is None or self._learned is None:
            return set()
        self._learned.cursor = self._cache.cursor
        if self._rounds <= 0:
            return set()
        pages = {
            item.name: len(cached.page_etags)
            for item in listed
            if wanted(item.name) and (cached := self._reusable(item)) is not None
        }
        if not pages:
            return set()
        budget = max(self._min_pages, math.ceil(sum(pages.values()) / self._rounds))
        cursor = self._cache.cursor
        names = sorted(pages)
        ordered = [n for n in names if n > cursor] + [n for n in names if n <= cursor]
        chosen: set[str] = set()
        spent = 0
        for name in ordered:
            if spent >= budget:
                break
            chosen.add(name)
            spent += pages[name]
            self._learned.cursor = name
        return chosen

    @staticmethod
    def _page_params(number: int, params: Mapping[str, str] | None = None) -> dict[str, str]:
        return {**(params or {}), "per_page": str(PAGE_SIZE), "page": str(number)}

    def _read_all(
        self, path: str, max_pages: int, collect: Callable[[list[Any]], None]
    ) -> list[str | None]:
        """Hand each page's items to ``collect``; return each page's ETag. At most
        ``max_pages`` pages."""
        etags: list[str | None] = []
        items = 0
        number = 1
        while True:
            page = self._client.get_page(path, self._page_params(number), None)
            collect(page.items or [])
            items += len(page.items or [])
            etags.append(page.etag)
            if not page.more:
                return etags
            if number >= max_pages:
                raise TooManyPages(number, items, self._client.api_url + path)
            number += 1

    def _unchanged(self, path: str, etags: tuple[str | None, ...]) -> bool:
        """Whether every page still has the ETag it had: all 304, free against the limit."""
        for number, etag in enumerate(etags, start=1):
            if etag is None or self._client.get_page(path, self._page_params(number), etag).items:
                return False
        return True

    def _list_pages(self, path: str) -> list[ListPage]:
        """The package list, each page conditional on the ETag the cache has for it."""
        stored = self._cache.list_pages if self._cache is not None else []
        pages: list[ListPage] = []
        params = {"package_type": "container"}
        # GitHub serves at most LIST_CAP packages: one page past them answers 400.
        max_pages = min(self.limits.max_pages, LIST_CAP // PAGE_SIZE + 1)
        self._malformed = []
        number = 1
        while True:
            old = stored[number - 1] if number <= len(stored) else None
            try:
                got = self._client.get_page(
                    path, self._page_params(number, params), old.etag if old else None
                )
            except GitHubRefused as exc:
                listed = sum(len(p.items) for p in pages)
                if exc.status != 400 or listed < LIST_CAP:
                    raise
                self.truncated = True
                log.error(
                    "package_list_truncated",
                    owner=str(self.owner),
                    listed=listed,
                    cap=LIST_CAP,
                    hint="GitHub lists at most 10,000 packages; "
                    "split the backup with --include-package",
                )
                return pages
            if got.items is None and old is not None:
                pages.append(old)
                # A full last page may have gained a successor without changing itself.
                more = old.more or len(old.items) >= PAGE_SIZE
            else:
                pages.append(self._list_page(number, got))
                more = got.more
            if not more:
                return pages
            if number >= max_pages:
                listed = sum(len(p.items) for p in pages)
                raise GitHubAnswerInvalid(
                    f"GitHub kept linking a next page of the package list of {self.owner} "
                    f"after {number} pages ({listed} packages); GitHub lists at most "
                    f"{LIST_CAP} packages in {LIST_CAP // PAGE_SIZE} pages: nothing is backed "
                    "up from a list that does not end; check --github-api-url / GITHUB_API_URL"
                )
            number += 1

    def _list_page(self, number: int, got: Page) -> ListPage:
        """One page of the package list, keeping its well-formed entries. A page with a
        malformed one is not cached, so that every run names the entry again."""
        items: list[Listed] = []
        skipped = False
        for position, item in enumerate(got.items or [], start=1):
            entry = listed_entry(item)
            if isinstance(entry, str):
                skipped = True
                where = f"entry {position} on page {number} of the package list"
                log.error("package_entry_skipped", owner=str(self.owner), entry=where, error=entry)
                self._malformed.append(
                    FailedPackage(
                        f"({where})",
                        f"GitHub listed a package out of its API's shape ({entry}): skipped, "
                        "the other packages are backed up",
                    )
                )
            else:
                items.append(entry)
        return ListPage(None if skipped else got.etag, tuple(items), got.more)

    def _package_list(self) -> list[Listed]:
        path = self.owner.packages_path()
        try:
            pages = self._list_pages(path)
        except GitHubRefused as exc:
            raise list_error(
                exc, self.owner, self._api_url + path, self._client.token_kind
            ) from None
        self._learned = DiscoveryCache(*DiscoveryCache.key(self.owner, self._api_url), pages)
        found: dict[str, Listed] = {}
        for page in pages:
            for item in page.items:
                found.setdefault(item.name, item)
        return [found[name] for name in sorted(found)]

    def _package(self, listed: Listed, cached: CachedPackage | None) -> Package | FailedPackage:
        """A package's tags: from the cache if every page is unchanged, else read in full."""
        name = listed.name
        path = self.owner.versions_path(name)
        try:
            if cached is not None and self._unchanged(path, cached.page_etags):
                self.packages_revalidated += 1
                self._remember(name, cached)
                return cached.package()
            pages = self.limits.version_pages(listed.version_count, PAGE_SIZE)
            collector = TagCollector(name)
            etags = self._read_all(path, pages, collector.add)
        except (TooManyPages, GitHubAnswerInvalid, OverLimit) as exc:
            self._failed.add(name)
            reason = str(exc)
            if isinstance(exc, TooManyPages):
                reason = too_many_pages(exc, listed.version_count, self.limits.max_pages)
            log.error("package_failed", package=name, error=reason)
            return FailedPackage(name, reason)
        except GitHubRefused as exc:
            self._failed.add(name)
            if exc.status == 401:  # the token stopped working: no other package will do better
                raise GitHubAccessError(exc.reason, status=exc.status) from None
            reason = exc.reason
            if exc.status == 404:
                reason = (
                    "GitHub answered HTTP 404 for its versions: deleted since it was listed, "
                    "or not visible to this token"
                )
            log.error("package_failed", package=name, status=exc.status, error=reason)
            return FailedPackage(name, reason, exc.status)
        package = collector.package()
        self.packages_read += 1
        if package.skipped:  # not cached: the next run reads it again, and names them again
            self._failed.add(name)
            return package
        self._remember(name, CachedPackage(listed, tuple(etags), package.tags, package.untagged))
        return package

    def _remember(self, name: str, entry: CachedPackage) -> None:
        if self._learned is not None:
            self._learned.packages[name] = entry

    async def packages(
        self, wanted: Callable[[str], bool]
    ) -> AsyncIterator[Package | FailedPackage]:
        """Yield each wanted package as soon as its versions are known, or why they could not
        be. Raises for what dooms the rest of discovery."""
        listed: list[Listed] = await self._client.call(self._package_list)
        log.info("packages_listed", owner=str(self.owner), count=len(listed))
        for malformed in self._malformed:  # no name to filter by: every shard names them
            yield malformed
        check = self._revalidation(listed, wanted)
        for item in listed:
            if not wanted(item.name):
                continue
            cached = self._reusable(item)
            if cached is not None and item.name not in check:
                self.packages_from_cache += 1
                self._remember(item.name, cached)
                yield cached.package()
            else:
                yield await self._client.call(self._package, item, cached)
        if self._cache is not None:
            log.info("discovery_cache_used", **self.cache_summary())
