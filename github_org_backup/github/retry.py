"""PyGithub's retry, made the tool's: its own log events, sleeps a stop interrupts, and a cap
on every rate-limit wait (PyGithub caps the reset wait but not a Retry-After).

urllib3 copies the retry object on every attempt; the copies share one ``RetryState``, which
keeps what the last attempt met for the error raised once the retries are spent.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Self

import structlog
from github import GithubRetry

from github_org_backup.errors import DiscoveryStopped
from github_org_backup.github.refusals import (
    iso_time,
    limit_of,
    lower_headers,
    network_reason,
    rate_limited,
    reset_time,
)

# The events of GitHub requests have always been the package lister's.
log = structlog.get_logger("github_org_backup.github.packages")

DEFAULT_MAX_RATE_LIMIT_WAIT_S = 900.0
RETRY_STATUSES = (408, 429, 500, 502, 503, 504)


class RetryState:
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


class PacedRetry(GithubRetry):
    """PyGithub's retry, plus: our own log events, interruptible sleeps, and a cap on every
    rate-limit wait (PyGithub caps the reset wait but not a Retry-After)."""

    def __init__(self, *, state: RetryState, **kwargs: Any) -> None:
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
            headers = lower_headers(response.headers)
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
    ) -> PacedRetry:
        state = self.state
        state.attempts = len(self.history) + 1
        if error is not None:
            state.last_error = network_reason(error)
        elif response is not None:
            state.last_status = response.status
            state.last_headers = lower_headers(response.headers)
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        assert isinstance(retry, PacedRetry)
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
                raise rate_limited(response.headers, wait=seconds, cap=cap)
            limit = limit_of(response.headers)
            resets_at = reset_time(response.headers, limit, seconds)
            log.warning(
                "github_rate_limit_wait",
                limit=limit,
                wait_s=round(seconds, 1),
                resets_at=iso_time(resets_at) if resets_at is not None else None,
                status=response.status,
            )
        self.state.wait(seconds)
