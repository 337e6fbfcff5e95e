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


A = TypeVar("A")
B = TypeVar("B")


async def both(first: Coroutine[Any, Any, A], second: Coroutine[Any, Any, B]) -> tuple[A, B]:
    """Run two at once and return both results. If either fails, the other is cancelled and
    the failure raised (the first one's, if both failed)."""
    tasks = (asyncio.ensure_future(first), asyncio.ensure_future(second))
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            task.cancel()  # a no-op for a finished task
        # Collected, so that no failure goes unretrieved and no task outlives the call.
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        if not task.cancelled() and (exc := task.exception()) is not None:
            raise exc
    return tasks[0].result(), tasks[1].result()


class Place:
    """A place held in a ``Window``; ``leave()`` gives it up before the holder is done."""

    def __init__(self, slots: asyncio.Semaphore) -> None:
        self._slots = slots
        self._held = True

    def leave(self) -> None:
        if self._held:
            self._held = False
            self._slots.release()


class Window:
    """At most ``size`` holders at once, each of which may leave before it is done: work
    that runs ahead of a scarcer resource, and gives its place up once it has that."""

    def __init__(self, size: int) -> None:
        self._slots = asyncio.Semaphore(size)

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[Place]:
        await self._slots.acquire()
        place = Place(self._slots)
        try:
            yield place
        finally:
            place.leave()
