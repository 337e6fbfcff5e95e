"""Running an engine's many small coroutines: one task per key shared by every caller, and a
pool that runs a long list a few at a time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine, Hashable, Iterable
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
    # Only the first failure is kept: each one's traceback holds its frames (a refused
    # manifest's bytes among them), and thousands of children may fail.
    first: list[Exception] = []

    async def worker() -> None:
        for start in pending:  # one iterator shared by the workers
            try:
                await start()
            except Exception as exc:
                if not first:
                    first.append(exc)

    await asyncio.gather(*(worker() for _ in range(limit)))
    if first:
        raise first[0]


class ByteBudget:
    """Bytes that may be in flight at once: ``hold(n)`` waits until ``n`` are free."""

    def __init__(self, total: int) -> None:
        self._total = total
        self._free = total
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def hold(self, size: int) -> AsyncIterator[None]:
        size = min(max(size, 0), self._total)  # one body larger than all may still go alone
        async with self._changed:
            await self._changed.wait_for(lambda: self._free >= size)
            self._free -= size
        try:
            yield
        finally:
            async with self._changed:
                self._free += size
                self._changed.notify_all()
