"""Running an engine's many small coroutines: one task per key shared by every caller, and a
pool that runs a long list a few at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Hashable, Iterable
from typing import Any, TypeVar

K = TypeVar("K", bound=Hashable)


async def shared(
    tasks: dict[K, asyncio.Task[None]],
    key: K,
    start: Callable[[], Coroutine[Any, Any, None]],
) -> None:
    """Run one task per key; later callers await it. A failed task is retried by the next caller."""
    task = tasks.get(key)
    if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
        task = asyncio.create_task(start())
        tasks[key] = task
    await asyncio.shield(task)


async def bounded(starts: Iterable[Callable[[], Coroutine[Any, Any, None]]], limit: int) -> None:
    """Run each, at most ``limit`` at once; if any fails, let the rest finish, then raise the
    first failure."""
    pending = iter(starts)
    failures: list[Exception] = []

    async def worker() -> None:
        for start in pending:  # one iterator shared by the workers
            try:
                await start()
            except Exception as exc:
                failures.append(exc)

    await asyncio.gather(*(worker() for _ in range(limit)))
    if failures:
        raise failures[0]
