"""PyGithub set up for the tool: one bounded connection, retries that log and can be
interrupted, requests paced and run on one worker thread.

PyGithub is not thread-safe: every call runs, in order, on one daemon thread, so the event loop
goes on while GitHub is asked. A stop (SIGTERM) never waits for PyGithub: the retry sleeps wake
up on it and the call in flight is abandoned. Every page is asked for through PyGithub's public
``Github.requester`` (``requestJson``, conditional on an ETag when given, over the bounded
connection of ``github.http``, with API version 2022-11-28 pinned), and PyGithub's and
requests' exceptions come out as the tool's (``github.refusals``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import requests
from github import Auth, Github, GithubException, RateLimitExceededException

from github_org_backup.base.logs import adopt_library_logs
from github_org_backup.errors import (
    DiscoveryStopped,
    GitHubAnswerInvalid,
    GitHubRefused,
    GitHubUnavailable,
)
from github_org_backup.github.http import (
    ACCEPT,
    API_VERSION,
    PAGE_SIZE,
    ApiLimits,
    BoundedConnection,
    next_link,
    parse_page,
)
from github_org_backup.github.refusals import (
    attempts_text,
    classify_refusal,
    explain_refusal,
    lower_headers,
    network_reason,
    rate_limited,
    their_message,
    token_kind,
)
from github_org_backup.github.retry import RETRY_STATUSES, PacedRetry, RetryState
from github_org_backup.model.packages import Owner

_JSON_NAMES: dict[type, str] = {dict: "object", str: "string", int: "number", float: "number"}
_JSON_NAMES |= {bool: "boolean", type(None): "null"}


class Worker:
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
class Answer:
    """One GET's answer: ``data`` is None on 304 Not Modified; ``next_path`` is the path (with
    its query) of the page GitHub's ``Link`` names next, checked to stay on the same API."""

    status: int
    data: Any
    etag: str | None
    next_path: str | None = None
    location: str | None = None  # a redirect's target, when not followed


@dataclass(frozen=True)
class Page:
    """One answer of a paginated list; ``items`` is None when GitHub said 304 Not Modified."""

    items: list[Any] | None
    etag: str | None
    more: bool  # GitHub linked a next page


class GitHubClient:
    """PyGithub for one owner's API: every request paced, bounded, retried and run on the
    worker thread; GitHub's refusals raised as ``GitHubRefused`` or the tool's errors."""

    def __init__(
        self,
        owner: Owner,
        token: str,
        api_url: str,
        *,
        retries: int,
        max_rate_limit_wait_s: float,
        request_interval_s: float,
        timeout_s: float,
        limits: ApiLimits,
        auth: Auth.Auth | None = None,
        secrets: Callable[[], tuple[str, ...]] | None = None,
    ) -> None:
        """``auth`` replaces ``token`` for PyGithub (a GitHub App's installation); ``secrets``
        then names every credential it has used, kept out of GitHub's echoed messages."""
        adopt_library_logs()  # importing PyGithub gave its logger a plain handler of its own
        self.owner = owner
        self.api_url = api_url.rstrip("/")
        parts = urlsplit(self.api_url)
        self._state = RetryState(f"{parts.scheme}://{parts.netloc}")
        self._max_wait = max_rate_limit_wait_s
        self._token = token
        self.token_kind = token_kind(token)
        retry = PacedRetry(
            state=self._state,
            total=retries,
            backoff_factor=1.0,
            backoff_jitter=0.5,
            status_forcelist=list(RETRY_STATUSES),
            max_rate_limit_wait=max_rate_limit_wait_s,
        )
        self._secrets = secrets or (lambda: (token,) if token else ())
        self._github = Github(
            auth=auth or Auth.Token(token),
            base_url=self.api_url,
            per_page=PAGE_SIZE,
            timeout=int(timeout_s),
            retry=retry,
            seconds_between_requests=None,  # paced here, from request start to request start
            api_version=API_VERSION,  # PyGithub sends none unless told
        )
        self._requester = self._github.requester
        # Every request goes through this connection, which bounds what is read of an answer.
        self._connection = BoundedConnection(
            self.api_url, retry=retry, timeout_s=timeout_s, limits=limits
        )
        self._worker = Worker(self._state.stop)
        self._stopped = asyncio.Event()
        self._interval = request_interval_s
        self._last_start = -math.inf
        self.pages_requested = 0
        self.pages_not_modified = 0

    @property
    def limits(self) -> ApiLimits:
        """How much of GitHub's answers is read."""
        return self._connection.limits

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

    async def call(self, function: Callable[..., Any], *args: Any) -> Any:
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
            raise rate_limited(
                exc.headers or {}, wait=getattr(exc, "wait", None), cap=self._max_wait
            ) from None
        except GithubException as exc:
            message = self._clean(their_message(exc.data))
            kind = classify_refusal(exc.headers or {}, message)
            if exc.status in (403, 429) and kind in ("primary", "secondary"):
                raise rate_limited(exc.headers or {}, wait=None, cap=self._max_wait) from None
            reason = explain_refusal(exc.status, exc.headers or {}, message, self.owner)
            raise GitHubRefused(exc.status, reason, message) from None
        except requests.exceptions.RetryError:
            status = self._state.last_status or 0
            attempts = self._state.attempts
            if status in (403, 429):
                raise rate_limited(
                    self._state.last_headers, wait=None, cap=self._max_wait, attempts=attempts
                ) from None
            raise GitHubRefused(
                status, f"GitHub answered HTTP {status} on {url} ({attempts_text(attempts)})"
            ) from None
        except requests.RequestException as exc:
            raise GitHubUnavailable(
                f"cannot reach the GitHub API: {network_reason(exc)} on {url} "
                f"({attempts_text(self._state.attempts)}); check --github-api-url / "
                "GITHUB_API_URL, DNS and the network (proxy, firewall)"
            ) from None

    def _clean(self, text: str) -> str:
        """Source-supplied text without the token, should the source echo it back."""
        for secret in self._secrets():
            if secret:
                text = text.replace(secret, "***")
        return text

    def get_page(self, path: str, params: dict[str, str], etag: str | None) -> Page:
        """One page, conditional on ``etag`` when given."""
        status, data, answered, json_text = self._get(path, params, etag)
        if status == 304 and etag:  # asked for: unchanged
            return Page(None, answered.get("etag") or etag, False)
        url = self.api_url + path.partition("?")[0]
        if status != 200:
            raise GitHubRefused(status, f"GitHub answered HTTP {status} without a list on {url}")
        if not isinstance(data, list):
            what = f"JSON {_JSON_NAMES.get(type(data), 'value')}" if json_text else "no JSON"
            raise GitHubAnswerInvalid(f"GitHub answered {url} with {what} where its API has a list")
        return Page(data, answered.get("etag"), 'rel="next"' in answered.get("link", ""))

    def get_json(
        self,
        path: str,
        params: dict[str, str] | None,
        etag: str | None = None,
    ) -> Answer:
        """One GET of any JSON answer, conditional on ``etag`` when given; a refusal (4xx,
        5xx after retries) raises ``GitHubRefused`` with its status."""
        status, data, answered, _ = self._get(path, params, etag)
        if status == 304 and etag:  # asked for: unchanged
            return Answer(304, None, answered.get("etag") or etag)
        if status != 200:
            url = self.api_url + path.partition("?")[0]
            raise GitHubRefused(status, f"GitHub answered HTTP {status} on {url}")
        return Answer(status, data, answered.get("etag"), next_link(answered, self.api_url))

    def _get(
        self, path: str, params: dict[str, str] | None, etag: str | None
    ) -> tuple[int, Any, dict[str, str], bool]:
        """One GET: its status, its parsed body, its headers, and whether the body was JSON.
        An error status raises PyGithub's exception for it, which ``_translated`` names."""
        url = self.api_url + path.partition("?")[0]
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
            answered = lower_headers(raw)
            if status == 304 and etag:
                self.pages_not_modified += 1
                return 304, None, answered, True
            json_text = True
            try:
                data = parse_page(body, self.limits, url) if body else None
            except ValueError:
                data, json_text = {"data": body[:200]}, False
            if status >= 400:
                error = data if isinstance(data, dict) else {"data": data}
                raise self._requester.createException(status, answered, error)
        return status, data, answered, json_text

    def get_redirect(self, path: str, accept: str) -> str:
        """Where GitHub redirects a GET of ``path`` (a release asset's bytes): the target URL,
        which the caller fetches without credentials."""
        url = self.api_url + path
        self._pace()
        self.pages_requested += 1
        self._connection.begin(follow_redirects=False)
        with self._translated(url):
            status, raw, body = self._requester.requestJson(
                "GET", path, None, {"Accept": accept}, cnx=cast(Any, self._connection)
            )
            answered = lower_headers(raw)
            if status >= 400:
                try:
                    data = parse_page(body, self.limits, url) if body else None
                except ValueError:
                    data = {"data": body[:200]}
                error = data if isinstance(data, dict) else {"data": data}
                raise self._requester.createException(status, answered, error)
        location = answered.get("location")
        if status not in (301, 302, 303, 307, 308) or not location:
            raise GitHubAnswerInvalid(
                f"GitHub answered {url} with HTTP {status}, not the redirect to its storage"
            )
        return location
