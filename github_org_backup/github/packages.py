"""Discover an owner's container packages and their tagged versions through PyGithub.

PyGithub has no packages API, so this asks for each page through PyGithub's public
``Github.requester`` (``requestJson``, conditional on the page's ETag, over the bounded
connection of ``github.http``, with API version 2022-11-28 pinned) and counts the pages
as it reads them. PyGithub is not thread-safe: every call runs on one worker thread, so the
event loop can copy earlier packages while later ones are still being listed.

What can go wrong, and whose failure it is:

- the package list cannot be read (token rejected, missing scope, SAML SSO, IP allow list,
  unknown owner, API unreachable, persistent 5xx, an answer out of bounds or of shape, pages
  past GitHub's own 10,000-package cap): nothing can be discovered, the whole run fails;
- a rate limit that resets later than the run is willing to wait, or the API becoming
  unreachable: discovery stops, and the packages found so far are still backed up;
- anything else on one package's versions (403, 404, a 5xx that outlasts the retries, a page
  out of bounds or of shape, more pages than its version count fills): only that package
  fails, as a ``FailedPackage``; so does a malformed entry of the package list;
- a malformed version or tag: skipped and named, the package's other versions are kept.

A stop (SIGTERM) never waits for PyGithub: the worker is a daemon thread, its retry sleeps
wake up on the stop, and the call in flight is abandoned.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import os
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Self, cast
from urllib.parse import urlsplit

import requests
import structlog
from github import Auth, Github, GithubException, GithubRetry, RateLimitExceededException
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from github_org_backup.base.logs import adopt_library_logs
from github_org_backup.base.redact import redact_url
from github_org_backup.errors import (
    BackupError,
    DiscoveryStopped,
    GitHubAccessError,
    GitHubAnswerInvalid,
    GitHubRateLimited,
    GitHubUnavailable,
    OverLimit,
    RateLimit,
    UsageError,
)
from github_org_backup.github.cache import (
    CachedPackage,
    DiscoveryCache,
    Listed,
    ListPage,
    listed_entry,
)
from github_org_backup.github.http import (
    ACCEPT,
    API_VERSION,
    ApiLimits,
    BoundedConnection,
    parse_page,
)
from github_org_backup.model.packages import FailedPackage, Owner, Package, TagCollector

log = structlog.get_logger("github_org_backup.github.packages")
adopt_library_logs()  # importing PyGithub just gave its logger a plain handler

PAGE_SIZE = 100
# GitHub answers 400 once per_page * page passes 10,000 on the org package list.
LIST_CAP = 10_000
# Serial requests, started at most 850 a minute: under the secondary rate limit of 900 points
# a minute per endpoint, where a GET is one point ("Rate limits for the REST API").
_REQUEST_INTERVAL_S = 60 / 850
# A warm run checks, page by page, at least this share of the unchanged packages' pages (and at
# least MIN_REVALIDATE_PAGES), so that every package is checked every REVALIDATE_ROUNDS runs.
REVALIDATE_ROUNDS = 10
MIN_REVALIDATE_PAGES = 100
DEFAULT_RETRIES = 6
DEFAULT_MAX_RATE_LIMIT_WAIT_S = 900.0
_RETRY_STATUSES = [408, 429, 500, 502, 503, 504]

Refusal = Literal["primary", "secondary", "sso", "scope", "forbidden"]


_JSON_NAMES: dict[type, str] = {dict: "object", str: "string", int: "number", float: "number"}
_JSON_NAMES |= {bool: "boolean", type(None): "null"}


class _TooManyPages(BackupError):
    """A listing still linked a next page after the most pages it may have."""

    def __init__(self, pages: int, items: int) -> None:
        super().__init__(f"still a next page after {pages} pages")
        self.pages = pages
        self.items = items

    def explain(self, version_count: int | None, max_pages: int) -> str:
        listed = "" if version_count is None else f", and the list says {version_count}"
        return (
            f"GitHub kept linking a next page of its versions after {self.pages} pages "
            f"({self.items} versions read{listed}): stopped, nothing of it is backed up. "
            f"A package may have at most {max_pages * PAGE_SIZE} versions here "
            "(GITHUB_API_MAX_PAGES pages of 100); delete old untagged versions, or raise it"
        )


class _Refused(BackupError):
    """GitHub answered one request with an error status; the caller decides whose it is."""

    def __init__(self, status: int, reason: str, message: str = "") -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.message = message  # GitHub's own words, cleaned


def retries_from_env(env: Mapping[str, str] = os.environ) -> int:
    """GITHUB_API_RETRIES: how often a failing GitHub request is retried (default 6)."""
    text = env.get("GITHUB_API_RETRIES", "").strip()
    if not text:
        return DEFAULT_RETRIES
    if not text.isdigit() or int(text) > 20:
        raise UsageError(f"GITHUB_API_RETRIES={text!r}: expected a whole number from 0 to 20")
    return int(text)


# Telling GitHub's answers apart


def _headers(raw: Mapping[str, str] | None) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (raw or {}).items()}


_MESSAGE_CHARS = 300


def _message(data: Any) -> str:
    """GitHub's ``message``: one line, bounded; the source may send anything there."""
    if isinstance(data, dict):
        data = data.get("message") or ""
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    text = " ".join("".join(c if c.isprintable() else " " for c in str(data or "")).split())
    return text if len(text) <= _MESSAGE_CHARS else text[: _MESSAGE_CHARS - 1] + "…"


def _scopes(value: str | None) -> set[str]:
    return {s.strip() for s in (value or "").split(",") if s.strip()}


def classify_refusal(headers: Mapping[str, str], message: str) -> Refusal:
    """Which of GitHub's 403s this is, from its headers first and its message second."""
    headers = _headers(headers)
    text = message.lower()
    if "x-github-sso" in headers or "saml enforcement" in text:
        return "sso"
    if headers.get("x-ratelimit-remaining") == "0":
        return "primary"
    if "retry-after" in headers or "secondary rate limit" in text:
        return "secondary"
    accepted = _scopes(headers.get("x-accepted-oauth-scopes"))
    held = headers.get("x-oauth-scopes")
    if accepted and held is not None and not accepted & _scopes(held):
        return "scope"
    return "forbidden"


def _limit_of(headers: Mapping[str, str]) -> RateLimit:
    return "primary" if _headers(headers).get("x-ratelimit-remaining") == "0" else "secondary"


def _attempts(count: int) -> str:
    return "1 attempt" if count == 1 else f"{count} attempts"


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _reset_time(headers: Mapping[str, str], limit: RateLimit, wait: float | None) -> float | None:
    """When the limit lifts: X-RateLimit-Reset for the primary one, else now + the wait."""
    headers = _headers(headers)
    reset = headers.get("x-ratelimit-reset", "")
    if limit == "primary" and reset.isdigit():
        return float(reset)
    if wait is None and headers.get("retry-after", "").strip().isdigit():
        wait = float(headers["retry-after"])
    return time.time() + wait if wait is not None else None


_LIMIT_NAMES = {
    "primary": "primary rate limit (the token's requests per hour)",
    "secondary": "secondary rate limit (too many requests in a short time)",
}


def _rate_limited(
    headers: Mapping[str, str],
    *,
    wait: float | None,
    cap: float,
    attempts: int | None = None,
) -> GitHubRateLimited:
    limit = _limit_of(headers)
    resets_at = _reset_time(headers, limit, wait)
    when = _iso(resets_at) if resets_at is not None else "an unknown time"
    if attempts is not None:
        what = f"GitHub's {_LIMIT_NAMES[limit]} still applied ({_attempts(attempts)})"
    else:
        what = f"GitHub's {_LIMIT_NAMES[limit]} lifts later than the {cap:g} s this run waits"
    return GitHubRateLimited(
        f"{what}; it resets at {when}: run again after the reset, or split the backup with "
        "--shard or --include-package",
        limit=limit,
        resets_at=resets_at,
    )


def explain_refusal(status: int, headers: Mapping[str, str], message: str, owner: Owner) -> str:
    """Why GitHub said no, and what to do about it."""
    headers = _headers(headers)
    said = f" ({message.rstrip('.')})" if message else ""
    if status == 401:
        return (
            "GitHub rejected the token (HTTP 401): check that GITHUB_TOKEN or "
            "--github-token-file holds a valid, unexpired personal access token"
        )
    if status != 403:
        return f"GitHub answered HTTP {status}{said}"
    kind = classify_refusal(headers, message)
    if kind == "sso":
        url = headers.get("x-github-sso", "").partition("url=")[2].strip()
        link = f"; GitHub's sign-in link: {redact_url(url)}" if url.startswith("http") else ""
        return (
            f"the token is not authorized for the SAML single sign-on of {owner} (HTTP 403, "
            f"X-GitHub-SSO){said}: authorize the token for the organisation on GitHub under "
            f"Settings > Developer settings > Personal access tokens > Configure SSO{link}"
        )
    if kind == "scope":
        have = ", ".join(sorted(_scopes(headers.get("x-oauth-scopes")))) or "none"
        need = ", ".join(sorted(_scopes(headers.get("x-accepted-oauth-scopes"))))
        return (
            f"the token is missing a scope (HTTP 403){said}: it has [{have}] and GitHub accepts "
            f"[{need}] here; use a classic personal access token with the read:packages scope"
        )
    if kind in ("primary", "secondary"):
        return f"GitHub's {_LIMIT_NAMES[kind]} (HTTP 403){said}"
    return f"GitHub refused access (HTTP 403){said}"


TokenKind = Literal["classic", "fine-grained", "app", "unknown"]


def token_kind(token: str) -> TokenKind:
    """What kind of GitHub token this is, from the prefix GitHub gives each kind."""
    if token.startswith("ghp_"):
        return "classic"
    if token.startswith("github_pat_"):
        return "fine-grained"
    if token.startswith(("ghs_", "ghu_")):  # an App's tokens; Actions' GITHUB_TOKEN is one
        return "app"
    return "unknown"


_NEEDS_CLASSIC = (
    "listing packages needs a classic personal access token with the read:packages scope: "
    "fine-grained tokens, GitHub App tokens and the Actions GITHUB_TOKEN cannot list them"
)


def _wrong_token(status: int, message: str, kind: TokenKind) -> str | None:
    """The kind of token that cannot list packages, when the refusal shows one was used."""
    text = message.lower()
    if kind == "fine-grained" or "not accessible by personal access token" in text:
        return "a fine-grained personal access token"
    if kind == "app" or "not accessible by integration" in text:
        return "a GitHub App or Actions token"
    if status == 400:  # what the Actions GITHUB_TOKEN gets on an org list (cli/cli#9606)
        return "one GitHub does not accept for package lists (the Actions GITHUB_TOKEN gets 400)"
    return None


def _list_error(exc: _Refused, owner: Owner, url: str, token: TokenKind) -> BackupError:
    """A refused package list: nothing can be discovered. GitHub's own message is always shown;
    the classic-token hint only where the refusal shows a token of the wrong kind."""
    status = exc.status
    said = f'. GitHub said: "{exc.message}"' if exc.message else ""
    what = f"GitHub refused to list packages of {owner} (HTTP {status}){said}"
    if status == 401:
        return GitHubAccessError(exc.reason, status=status)
    wrong = _wrong_token(status, exc.message, token) if status in (400, 403, 404) else None
    if wrong is not None and status != 404:
        return GitHubAccessError(f"{what}. The token is {wrong}: {_NEEDS_CLASSIC}", status=status)
    if status == 403 and exc.reason.startswith("GitHub refused access"):
        return GitHubAccessError(
            f"{what}. Do what GitHub's message asks (for example the organisation's IP allow "
            "list or its policy on token kinds), or use a token it accepts, then run again",
            status=status,
        )
    if status == 403:
        return GitHubAccessError(
            f"GitHub refused to list packages of {owner}: {exc.reason}", status=status
        )
    if status == 404:
        who = "organisation" if owner.kind == "orgs" else "user"
        hint = f"; the token is {wrong}: {_NEEDS_CLASSIC}" if wrong else ""
        return GitHubAccessError(
            f"{who} {owner.name!r} not found, or not visible to this token (HTTP 404 on "
            f"{url}){hint}",
            status=status,
        )
    return GitHubUnavailable(f"cannot list packages of {owner}: {exc.reason}")


def network_reason(error: BaseException) -> str:
    """What failed on the wire, in words: DNS, connection refused, a timeout, TLS."""
    if isinstance(error, requests.RequestException) and error.args:
        inner = error.args[0]
        if isinstance(inner, BaseException):
            error = inner
    if isinstance(error, MaxRetryError) and error.reason is not None:
        error = error.reason
    cause = error.__cause__ or error.__context__
    if isinstance(error, NameResolutionError):
        return f"DNS lookup failed ({cause or error})"
    if isinstance(error, NewConnectionError):
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        return f"cannot connect ({cause or error})"
    if isinstance(error, ConnectTimeoutError):
        return "connect timed out"
    if isinstance(error, ReadTimeoutError):
        return "read timed out"
    if isinstance(error, SSLError):
        return f"TLS error ({error})"
    if isinstance(error, ProtocolError):
        return f"connection broken ({error.args[-1] if error.args else error})"
    return f"{type(error).__name__}: {error}"


# Retries that log, can be interrupted, and never wait past the cap


class _RetryState:
    """Shared by every copy urllib3 makes of the retry object during one client's life."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.stop = threading.Event()
        self.last_status: int | None = None
        self.last_headers: dict[str, str] = {}
        self.last_error: str | None = None
        self.attempts = 0

    def url(self, path: str | None) -> str:
        return self.origin + (path or "").partition("?")[0]

    def wait(self, seconds: float) -> None:
        if seconds > 0 and self.stop.wait(seconds):
            raise DiscoveryStopped("discovery stopped while waiting to retry a GitHub request")
        if self.stop.is_set():
            raise DiscoveryStopped("discovery stopped")


class _Retry(GithubRetry):
    """PyGithub's retry, plus: our own log events, interruptible sleeps, and a cap on every
    rate-limit wait (PyGithub caps the reset wait but not a Retry-After)."""

    def __init__(self, *, state: _RetryState, **kwargs: Any) -> None:
        self.state = state
        super().__init__(**kwargs)

    def new(self, **kw: Any) -> Self:
        kw["state"] = self.state
        return super().new(**kw)

    def _planned_wait(self, response: Any) -> float:
        if self.respect_retry_after_header and response is not None:
            retry_after = self.get_retry_after(response)
            if retry_after:
                return retry_after
        wait = self.get_backoff_time()
        if response is not None and response.status in (403, 429):
            headers = _headers(response.headers)
            reset = headers.get("x-ratelimit-reset", "")
            if headers.get("x-ratelimit-remaining") == "0" and reset.isdigit():
                wait = max(wait, float(reset) - time.time() + 1)  # a 429 PyGithub does not read
        return wait

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> _Retry:
        state = self.state
        state.attempts = len(self.history) + 1
        if error is not None:
            state.last_error = network_reason(error)
        elif response is not None:
            state.last_status = response.status
            state.last_headers = _headers(response.headers)
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        assert isinstance(retry, _Retry)
        if error is not None:
            log.warning(
                "github_api_unreachable",
                url=state.url(url),
                error=state.last_error,
                attempt=state.attempts,
                retry_in_s=round(retry.get_backoff_time(), 1),
            )
        elif response is not None and response.status not in (403, 429):
            log.warning(
                "github_request_retry",
                url=state.url(url),
                status=response.status,
                attempt=state.attempts,
                retry_in_s=round(retry._planned_wait(response), 1),
            )
        return retry

    def sleep(self, response: Any = None) -> None:
        seconds = self._planned_wait(response)
        if response is not None and response.status in (403, 429):
            cap = self.max_rate_limit_wait
            if cap is not None and seconds > cap:
                raise _rate_limited(response.headers, wait=seconds, cap=cap)
            limit = _limit_of(response.headers)
            resets_at = _reset_time(response.headers, limit, seconds)
            log.warning(
                "github_rate_limit_wait",
                limit=limit,
                wait_s=round(seconds, 1),
                resets_at=_iso(resets_at) if resets_at is not None else None,
                status=response.status,
            )
        self.state.wait(seconds)


class _Worker:
    """One daemon thread running PyGithub calls in order. A daemon, so that an abandoned
    call (a socket waiting, a retry sleeping) never holds the process open at exit."""

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self._queue: queue.SimpleQueue[
            tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], Callable[[], Any]] | None
        ] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="github-api", daemon=True)
        self._thread.start()

    def submit(self, function: Callable[[], Any]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put((loop, future, function))
        return future

    def close(self) -> None:
        self._queue.put(None)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            loop, future, function = item
            if self._stop.is_set():
                continue
            try:
                outcome: tuple[bool, Any] = (True, function())
            except BaseException as exc:  # handed to the awaiting coroutine
                outcome = (False, exc)
            try:
                loop.call_soon_threadsafe(_settle, future, outcome)
            except RuntimeError:  # the loop is gone: nobody is waiting any more
                return


def _settle(future: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
    if future.done():
        return
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


@dataclass(frozen=True)
class _Page:
    """One answer of a paginated list; ``items`` is None when GitHub said 304 Not Modified."""

    items: list[Any] | None
    etag: str | None
    more: bool  # GitHub linked a next page


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
    ) -> None:
        self.owner = owner
        self._api_url = api_url.rstrip("/")
        parts = urlsplit(self._api_url)
        self._state = _RetryState(f"{parts.scheme}://{parts.netloc}")
        self._max_wait = max_rate_limit_wait_s
        self._token = token
        self._token_kind = token_kind(token)
        self._limits = ApiLimits.from_env()
        retry = _Retry(
            state=self._state,
            total=retries,
            backoff_factor=1.0,
            backoff_jitter=0.5,
            status_forcelist=list(_RETRY_STATUSES),
            max_rate_limit_wait=max_rate_limit_wait_s,
        )
        self._github = Github(
            auth=Auth.Token(token),
            base_url=self._api_url,
            per_page=PAGE_SIZE,
            timeout=int(timeout_s),
            retry=retry,
            seconds_between_requests=None,  # paced here, from request start to request start
            api_version=API_VERSION,  # PyGithub sends none unless told
        )
        self._requester = self._github.requester
        # Every request goes through this connection, which bounds what is read of an answer.
        self._connection = BoundedConnection(
            self._api_url, retry=retry, timeout_s=timeout_s, limits=self._limits
        )
        self._worker = _Worker(self._state.stop)
        self._stopped = asyncio.Event()
        self._interval = request_interval_s
        self._last_start = -math.inf
        self._rounds = revalidate_rounds  # 0: never revalidate an unchanged package
        self._min_pages = revalidate_min_pages
        self._cache: DiscoveryCache | None = None
        self._learned: DiscoveryCache | None = None
        self._failed: set[str] = set()
        self._malformed: list[FailedPackage] = []  # package list entries out of shape
        self.cache_state: Literal["off", "absent", "used"] = "off"
        self.pages_requested = 0
        self.pages_not_modified = 0
        self.packages_from_cache = 0
        self.packages_revalidated = 0
        self.packages_read = 0
        self.truncated = False

    @property
    def limits(self) -> ApiLimits:
        """How much of GitHub's answers is read (from the environment unless set)."""
        return self._limits

    @limits.setter
    def limits(self, limits: ApiLimits) -> None:
        self._limits = self._connection.limits = limits

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

    # Requests

    def stop(self) -> None:
        """Abandon discovery now: the call in flight is not waited for."""
        self._state.stop.set()
        self._stopped.set()

    def close(self) -> None:
        self.stop()
        self._worker.close()
        self._github.close()
        self._connection.close()

    @property
    def rate_limit_remaining(self) -> int | None:
        remaining, _ = self._requester.rate_limiting
        return remaining if remaining >= 0 else None

    async def _call(self, function: Callable[..., Any], *args: Any) -> Any:
        if self._stopped.is_set():
            raise DiscoveryStopped("discovery stopped")
        future = self._worker.submit(functools.partial(function, *args))
        stopped = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait((future, stopped), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not future.done():
                future.cancel()
        if future.cancelled():
            raise DiscoveryStopped("discovery stopped while a GitHub request was in flight")
        return future.result()

    def _pace(self) -> None:
        """One request at a time, started at most once per interval: GitHub asks for serial
        requests, and allows 900 points (GET requests) a minute per endpoint."""
        self._state.wait(self._last_start + self._interval - time.monotonic())
        self._last_start = time.monotonic()

    @contextlib.contextmanager
    def _translated(self, url: str) -> Iterator[None]:
        """PyGithub's and requests' exceptions, as this module's."""
        try:
            yield
        except RateLimitExceededException as exc:  # PyGithub would wait past the cap
            raise _rate_limited(
                exc.headers or {}, wait=getattr(exc, "wait", None), cap=self._max_wait
            ) from None
        except GithubException as exc:
            message = self._clean(_message(exc.data))
            kind = classify_refusal(exc.headers or {}, message)
            if exc.status in (403, 429) and kind in ("primary", "secondary"):
                raise _rate_limited(exc.headers or {}, wait=None, cap=self._max_wait) from None
            reason = explain_refusal(exc.status, exc.headers or {}, message, self.owner)
            raise _Refused(exc.status, reason, message) from None
        except requests.exceptions.RetryError:
            status = self._state.last_status or 0
            attempts = self._state.attempts
            if status in (403, 429):
                raise _rate_limited(
                    self._state.last_headers, wait=None, cap=self._max_wait, attempts=attempts
                ) from None
            raise _Refused(
                status, f"GitHub answered HTTP {status} on {url} ({_attempts(attempts)})"
            ) from None
        except requests.RequestException as exc:
            raise GitHubUnavailable(
                f"cannot reach the GitHub API: {network_reason(exc)} on {url} "
                f"({_attempts(self._state.attempts)}); check --github-api-url / GITHUB_API_URL, "
                "DNS and the network (proxy, firewall)"
            ) from None

    def _clean(self, text: str) -> str:
        """Source-supplied text without the token, should the source echo it back."""
        return text.replace(self._token, "***") if self._token else text

    def _get_page(self, path: str, params: dict[str, str], etag: str | None) -> _Page:
        """One page, conditional on ``etag`` when given."""
        url = self._api_url + path
        self._pace()
        self.pages_requested += 1
        headers = {"Accept": ACCEPT} | ({"If-None-Match": etag} if etag else {})
        self._connection.begin()
        with self._translated(url):
            status, raw, body = self._requester.requestJson(
                # PyGithub drives any object with its connection's request and getresponse.
                "GET",
                path,
                params,
                headers,
                cnx=cast(Any, self._connection),
            )
            answered = _headers(raw)
            if status == 304 and etag:
                self.pages_not_modified += 1
                return _Page(None, answered.get("etag") or etag, False)
            json_text = True
            try:
                data = parse_page(body, self._limits, url) if body else None
            except ValueError:
                data, json_text = {"data": body[:200]}, False
            if status >= 400:
                error = data if isinstance(data, dict) else {"data": data}
                raise self._requester.createException(status, answered, error)
        if status != 200:
            raise _Refused(status, f"GitHub answered HTTP {status} without a list on {url}")
        if not isinstance(data, list):
            what = f"JSON {_JSON_NAMES.get(type(data), 'value')}" if json_text else "no JSON"
            raise GitHubAnswerInvalid(f"GitHub answered {url} with {what} where its API has a list")
        return _Page(data, answered.get("etag"), 'rel="next"' in answered.get("link", ""))

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
            page = self._get_page(path, self._page_params(number), None)
            collect(page.items or [])
            items += len(page.items or [])
            etags.append(page.etag)
            if not page.more:
                return etags
            if number >= max_pages:
                raise _TooManyPages(number, items)
            number += 1

    def _unchanged(self, path: str, etags: tuple[str | None, ...]) -> bool:
        """Whether every page still has the ETag it had: all 304, free against the limit."""
        for number, etag in enumerate(etags, start=1):
            if etag is None or self._get_page(path, self._page_params(number), etag).items:
                return False
        return True

    def _list_pages(self, path: str) -> list[ListPage]:
        """The package list, each page conditional on the ETag the cache has for it."""
        stored = self._cache.list_pages if self._cache is not None else []
        pages: list[ListPage] = []
        params = {"package_type": "container"}
        # GitHub serves at most LIST_CAP packages: one page past them answers 400.
        max_pages = min(self._limits.max_pages, LIST_CAP // PAGE_SIZE + 1)
        self._malformed = []
        number = 1
        while True:
            old = stored[number - 1] if number <= len(stored) else None
            try:
                got = self._get_page(
                    path, self._page_params(number, params), old.etag if old else None
                )
            except _Refused as exc:
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

    def _list_page(self, number: int, got: _Page) -> ListPage:
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
        except _Refused as exc:
            raise _list_error(exc, self.owner, self._api_url + path, self._token_kind) from None
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
            pages = self._limits.version_pages(listed.version_count, PAGE_SIZE)
            collector = TagCollector(name)
            etags = self._read_all(path, pages, collector.add)
        except (_TooManyPages, GitHubAnswerInvalid, OverLimit) as exc:
            self._failed.add(name)
            reason = str(exc)
            if isinstance(exc, _TooManyPages):
                reason = exc.explain(listed.version_count, self._limits.max_pages)
            log.error("package_failed", package=name, error=reason)
            return FailedPackage(name, reason)
        except _Refused as exc:
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
        listed: list[Listed] = await self._call(self._package_list)
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
                yield await self._call(self._package, item, cached)
        if self._cache is not None:
            log.info("discovery_cache_used", **self.cache_summary())
