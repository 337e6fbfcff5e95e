"""How much copying to keep in flight: enough to fill the link, within the connection budget.

A blob transfer spends round trips with nothing on the wire: the upload session's POST, the
source GET's first byte, the destination's answer to the PUT. To keep a link busy, the bytes
of other transfers must cover those gaps: at rate C, with idle time I per transfer and blobs
of S bytes on average, about ``C x I / S + 1`` transfers at once (the bandwidth-delay product
over the blob size). The run starts at ``--concurrency``, measures C (the best rate over a
window), I and S from the transfers that finish, and raises the number of copies in flight
when the product asks for more, never above the connections allowed per host.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType

import structlog

log = structlog.get_logger("github_org_backup.copy.engine")

RATE_WINDOW_S = 1.0  # the rate is measured over windows at least this long
IDLE_ROUND_TRIPS = 2.0  # the set-up measured (POST, first byte) and the PUT's answer after it


class Limit:
    """A semaphore whose size can grow while it is in use."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._slots = asyncio.Semaphore(size)

    async def __aenter__(self) -> None:
        await self._slots.acquire()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._slots.release()

    def grow(self, size: int) -> None:
        for _ in range(size - self.size):
            self._slots.release()  # one more place, taken by the first in line
        self.size = max(self.size, size)


class Pace:
    """The number of copies to keep in flight, from the transfers the run has seen.

    The rate is sampled from ``received`` (every blob byte read so far, counted as it
    arrives), so a large blob's bytes spread over the windows they crossed in.
    """

    def __init__(
        self,
        floor: int,
        ceiling: int,
        received: Callable[[], int],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.floor = floor
        self.ceiling = max(floor, ceiling)
        self._received = received
        self._clock = clock
        self._samples: deque[tuple[float, int]] = deque()  # (when, bytes received by then)
        self.rate = 0.0  # bytes/s: the best seen over a window
        self.idle_s = math.inf  # the shortest set-up seen, times the idle round trips
        self._bytes = 0
        self._count = 0

    def transferred(self, size: int, setup_s: float) -> None:
        """One blob finished: ``size`` bytes, ``setup_s`` from its start to its first byte."""
        now, received = self._clock(), self._received()
        self._count += 1
        self._bytes += size
        self.idle_s = min(self.idle_s, IDLE_ROUND_TRIPS * max(setup_s, 0.0))
        self._samples.append((now, received))
        while len(self._samples) > 2 and now - self._samples[1][0] >= RATE_WINDOW_S:
            self._samples.popleft()
        since, before = self._samples[0]
        if now - since >= RATE_WINDOW_S:
            self.rate = max(self.rate, (received - before) / (now - since))

    @property
    def target(self) -> int:
        if not self._count or not self.rate or math.isinf(self.idle_s):
            return self.floor
        mean = self._bytes / self._count
        wanted = math.ceil(self.rate * self.idle_s / max(mean, 1.0)) + 1
        return min(max(wanted, self.floor), self.ceiling)


class Paced:
    """Copy slots and transfer slots that grow together as ``Pace`` asks."""

    def __init__(self, pace: Pace) -> None:
        self.pace = pace
        self.images = Limit(pace.floor)
        self.transfers = Limit(pace.floor)

    def transferred(self, size: int, setup_s: float) -> None:
        self.pace.transferred(size, setup_s)
        target = self.pace.target
        if target > self.transfers.size:
            log.info(
                "concurrency_raised",
                images=target,
                was=self.transfers.size,
                rate_mbit_s=round(self.pace.rate * 8 / 1e6, 1),
                idle_ms=round(self.pace.idle_s * 1000),
            )
            self.images.grow(target)
            self.transfers.grow(target)
