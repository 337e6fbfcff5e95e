"""One retry policy for every HTTP exchange: which faults are transient, and how long to wait."""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from dataclasses import dataclass

import aiohttp

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
        return random.uniform(ceiling / 2, ceiling)


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


class HostBackoff:
    """Shared per-host pause: a 429 or 503 with Retry-After slows every request to that host."""

    def __init__(self) -> None:
        self._not_before = 0.0

    def pause(self, seconds: float) -> None:
        self._not_before = max(self._not_before, time.monotonic() + seconds)

    async def wait(self) -> None:
        while (remaining := self._not_before - time.monotonic()) > 0:
            await asyncio.sleep(remaining)
