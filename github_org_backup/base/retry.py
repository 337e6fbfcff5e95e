"""One retry policy for every exchange: which faults are transient, how long to wait, and the
one loop (``retrying``) that every retry in the tool goes through.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import email.utils
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import aiohttp

from github_org_backup.errors import RetryLater

T = TypeVar("T")

# 5xx answers that say the server will never do this: a retry gets the same answer.
_FINAL_SERVER_STATUSES = frozenset({501, 505})
RETRYABLE_EXCEPTIONS: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectionError,  # reset, refused, server disconnected, payload EOF
    aiohttp.ClientPayloadError,
    asyncio.TimeoutError,
    ConnectionError,
)


def retryable_status(status: int) -> bool:
    """408, 429 and 5xx may pass; any other 4xx fails the same way however often it is sent."""
    return status in (408, 429) or (500 <= status <= 599 and status not in _FINAL_SERVER_STATUSES)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded in attempts and in total time."""

    attempts: int = 6
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    max_retry_after_s: float = 120.0
    budget_s: float = 600.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after_s)
        ceiling = min(self.max_delay_s, self.base_delay_s * (2 ** (attempt - 1)))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not a secret

    def immediate(self, attempts: int | None = None) -> RetryPolicy:
        """The same bound on attempts (or ``attempts``), with no wait between them."""
        return dataclasses.replace(
            self,
            attempts=self.attempts if attempts is None else attempts,
            base_delay_s=0.0,
            max_delay_s=0.0,
        )


async def retrying(
    policy: RetryPolicy,
    attempt: Callable[[int], Awaitable[T]],
    *,
    retry_on: tuple[type[BaseException], ...],
    on_retry: Callable[[int, BaseException, float], None] | None = None,
    exhausted: Callable[[int, BaseException], BaseException] | None = None,
) -> T:
    """Call ``attempt(n)`` for n = 1, 2, ... until it returns, at most ``policy.attempts`` times.

    An exception in ``retry_on`` is followed, after ``policy.delay`` (honouring a
    ``RetryLater.retry_after``) and ``on_retry(n, exc, delay)``, by the next attempt; after the
    last one it is raised as it is, or as ``exhausted(n, exc)`` returns it. An attempt that must
    not be retried raises something outside ``retry_on``.
    """
    number = 0
    while True:
        number += 1
        try:
            return await attempt(number)
        except retry_on as exc:
            if number >= policy.attempts:
                if exhausted is None:
                    raise
                raise exhausted(number, exc) from None
            hint = exc.retry_after if isinstance(exc, RetryLater) else None
            delay = policy.delay(number, hint)
            if on_retry is not None:
                on_retry(number, exc, delay)
            await asyncio.sleep(delay)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header in either form (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


_GO_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_BODY_HINT = re.compile(r"retry-after:\s*((?:[0-9]+(?:\.[0-9]+)?(?:ns|us|µs|ms|s|m|h))+)", re.I)


def retry_after_in_body(text: str) -> float | None:
    """GHCR's hint in a 429 body, e.g. ``retry-after: 10.305464ms, allowed: 2000/minute``
    (a Go duration), in seconds."""
    found = _BODY_HINT.search(text)
    if found is None:
        return None
    return sum(float(n) * _GO_UNITS[u] for n, u in _GO_DURATION.findall(found.group(1)))


class HostBudget:
    """How fast one registry host may be asked: an optional cap, a pause when the host says
    when to come back, and an adaptive rate that halves on every 429 and creeps back up.

    A registry's limit is often shared with others (GHCR limits requests per organisation, and
    the organisation's own CI uses the same allowance), so a 429 slows every request to that
    host, not just the one that got it.
    """

    _WINDOW_S = 2.0  # how far back the current request rate is measured
    _FLOOR = 0.5  # requests per second; slower than this, the run would not finish
    _RECOVERY = 0.05  # a second of answers that are not 429s raises the rate by this fraction

    def __init__(self, cap: float | None = None) -> None:
        self.cap = cap  # requests per second, or None
        self.rate: float | None = cap  # the current allowance; None: as fast as it goes
        self._not_before = 0.0
        self._next_slot = 0.0
        self._recent: collections.deque[float] = collections.deque()
        self._lowered_at = -1e9

    def pause(self, seconds: float) -> None:
        """Send nothing to this host for ``seconds`` (a Retry-After)."""
        self._not_before = max(self._not_before, time.monotonic() + seconds)

    async def acquire(self) -> None:
        """Wait for this request's turn."""
        while True:
            now = time.monotonic()
            wait = self._not_before - now
            if self.rate is not None:
                wait = max(wait, self._next_slot - now)
            if wait <= 0:
                break
            await asyncio.sleep(wait)
        now = time.monotonic()
        if self.rate is not None:
            self._next_slot = max(self._next_slot, now) + 1.0 / self.rate
        self._recent.append(now)
        while self._recent and self._recent[0] < now - self._WINDOW_S:
            self._recent.popleft()

    def too_many_requests(self) -> float:
        """A 429: halve the rate (measured from the requests just sent if there was none).

        The requests already in flight when the limit tripped all come back 429 together:
        they count as one signal, so the rate is halved at most once a second.
        """
        now = time.monotonic()
        if self.rate is not None and now - self._lowered_at < 1.0:
            return self.rate
        current = self.rate if self.rate is not None else len(self._recent) / self._WINDOW_S
        self.rate = max(self._FLOOR, current / 2)
        if self.cap is not None:
            self.rate = min(self.rate, self.cap)
        self._lowered_at = now
        return self.rate

    def answered(self) -> None:
        """An answer that was not a 429: let the rate recover, up to the cap (or no limit).

        Each answer adds 1/rate of the step, so the rate grows by about one step a second,
        whatever it is: one request a second, or 5 %, whichever is more.
        """
        if self.rate is None:
            return
        self.rate += max(1.0, self._RECOVERY * self.rate) / self.rate
        if self.cap is not None:
            self.rate = min(self.rate, self.cap)
        elif self.rate > 1000:
            self.rate = None  # recovered: no limit of our own
