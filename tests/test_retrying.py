"""The one retry loop: attempts are bounded, waits follow the policy, the end is the caller's."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from github_org_backup.base.retry import RetryPolicy, retrying
from github_org_backup.errors import RetryLater, TransientError

NO_WAIT = RetryPolicy(attempts=3, base_delay_s=0.0, max_delay_s=0.0, max_retry_after_s=0.0)


def failing(times: int, error: BaseException) -> tuple[list[int], Callable[[int], Awaitable[int]]]:
    """An attempt function that fails ``times`` times with ``error``, then returns its number."""
    seen: list[int] = []

    async def attempt(number: int) -> int:
        seen.append(number)
        if number <= times:
            raise error
        return number

    return seen, attempt


async def test_returns_the_first_attempt_that_succeeds() -> None:
    """Two connection errors, then an answer: three attempts, numbered from one."""
    seen, attempt = failing(2, ConnectionError())
    retried: list[tuple[int, str]] = []
    result = await retrying(
        NO_WAIT,
        attempt,
        retry_on=(ConnectionError,),
        on_retry=lambda n, exc, _delay: retried.append((n, type(exc).__name__)),
    )
    assert result == 3 and seen == [1, 2, 3]
    assert retried == [(1, "ConnectionError"), (2, "ConnectionError")]


async def test_after_the_last_attempt_exhausted_decides_what_is_raised() -> None:
    """Past ``policy.attempts`` the error goes through ``exhausted``; without it, as it is."""
    seen, attempt = failing(5, ConnectionError("reset"))
    with pytest.raises(TransientError, match="3 attempts: ConnectionError"):
        await retrying(
            NO_WAIT,
            attempt,
            retry_on=(ConnectionError,),
            exhausted=lambda n, exc: TransientError(f"{n} attempts: {type(exc).__name__}"),
        )
    assert seen == [1, 2, 3]
    seen, attempt = failing(5, ConnectionError("reset"))
    with pytest.raises(ConnectionError, match="reset"):
        await retrying(NO_WAIT, attempt, retry_on=(ConnectionError,))


async def test_an_error_outside_retry_on_is_never_retried() -> None:
    """Only the listed errors are retried: anything else ends the loop at once."""
    seen, attempt = failing(1, ValueError("final"))
    with pytest.raises(ValueError, match="final"):
        await retrying(NO_WAIT, attempt, retry_on=(ConnectionError,))
    assert seen == [1]


async def test_retry_later_waits_as_long_as_it_says_within_the_cap() -> None:
    """A RetryLater's hint sets the wait, capped by the policy's max_retry_after_s."""
    policy = RetryPolicy(attempts=2, base_delay_s=5.0, max_delay_s=5.0, max_retry_after_s=0.01)
    seen, attempt = failing(1, RetryLater("HTTP 429", retry_after=60.0))
    delays: list[float] = []
    await retrying(
        policy,
        attempt,
        retry_on=(RetryLater,),
        on_retry=lambda _n, _exc, delay: delays.append(delay),
    )
    assert delays == [0.01] and seen == [1, 2]
