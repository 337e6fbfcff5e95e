"""The number of copies in flight follows the link's bandwidth-delay product."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from github_org_backup.copy.pace import RATE_WINDOW_S, Limit, Pace
from tests.harness.memstore import MemStore, image
from tests.test_engine_inprocess import engine_for, spec, statuses


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.received = 0  # the bytes read so far, as the run's stats count them

    def __call__(self) -> float:
        return self.now


def _pace(floor: int, ceiling: int, clock: _Clock) -> Pace:
    return Pace(floor, ceiling, lambda: clock.received, clock)


def _fed(pace: Pace, clock: _Clock, *, rate: float, size: int, setup_s: float) -> Pace:
    """Transfers of ``size`` bytes finishing at ``rate`` bytes/s for three windows."""
    gap = size / rate
    for _ in range(int(3 * RATE_WINDOW_S / gap) + 2):
        clock.now += gap
        clock.received += size
        pace.transferred(size, setup_s)
    return pace


def test_a_link_that_the_floor_fills_keeps_the_floor() -> None:
    """100 Mbit/s, 50 ms round trips, 1.3 MB blobs: 16 transfers cover the product."""
    clock = _Clock()
    pace = _fed(_pace(16, 32, clock), clock, rate=12.5e6, size=1_300_000, setup_s=0.1)
    assert abs(pace.rate - 12.5e6) / 12.5e6 < 0.05
    assert pace.target == 16


def test_a_long_fat_link_raises_the_copies_in_flight_to_its_product() -> None:
    """Set-ups of 100 ms (idle 200 ms) and 750 kB blobs: at 1 Gbit/s 125e6 x 0.2 / 750e3 + 1
    = 35 wanted, 32 allowed; at 400 Mbit/s 14 + 1 = 15, under the floor of 16; at 500 Mbit/s
    17 + 1 = 18."""
    for rate, expected in ((125e6, 32), (50e6, 16), (62.5e6, 18)):
        clock = _Clock()
        pace = _fed(_pace(16, 32, clock), clock, rate=rate, size=750_000, setup_s=0.1)
        assert pace.target == expected, rate


def test_nothing_measured_yet_is_the_floor() -> None:
    clock = _Clock()
    pace = _pace(16, 32, clock)
    assert pace.target == 16
    pace.transferred(10**9, 1.0)  # one transfer is no rate
    assert pace.target == 16
    assert _pace(40, 32, clock).ceiling == 40, "--concurrency above the budget is kept"


def test_a_large_blob_counts_in_the_windows_its_bytes_crossed() -> None:
    """A 2 GB layer read at 12.5 MB/s over 160 s, finishing beside small blobs: the rate is
    the link's, not 2 GB in the window where it finished."""
    clock = _Clock()
    pace = _pace(16, 32, clock)
    for _ in range(160):  # the big layer's bytes arrive, a second at a time
        clock.now += 1.0
        clock.received += 12_500_000
        pace.transferred(1000, 0.1)  # small blobs finish meanwhile
    pace.transferred(2_000_000_000, 0.1)
    assert pace.rate < 13e6


async def test_a_limit_lets_waiters_in_when_it_grows() -> None:
    limit = Limit(1)
    entered: list[int] = []
    release = asyncio.Event()

    async def hold(n: int) -> None:
        async with limit:
            entered.append(n)
            await release.wait()

    tasks = [asyncio.create_task(hold(n)) for n in range(3)]
    await asyncio.sleep(0.01)
    assert entered == [0]
    limit.grow(3)
    await asyncio.sleep(0.01)
    assert sorted(entered) == [0, 1, 2]
    release.set()
    await asyncio.gather(*tasks)


class _FarSource(MemStore):
    """Every blob read waits a round trip before its first byte: a latency-bound link."""

    delay_s: float = 0.04
    reading: int = 0
    peak: int = 0

    @asynccontextmanager
    async def read_blob(
        self, name: str, digest: str, offset: int = 0
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        self.reading += 1
        self.peak = max(self.peak, self.reading)
        try:
            await asyncio.sleep(self.delay_s)
            async with super().read_blob(name, digest, offset) as chunks:
                yield chunks
        finally:
            self.reading -= 1


async def test_the_engine_raises_its_transfers_on_a_latency_bound_link() -> None:
    """Two transfers at first; the blobs' round trips leave the link idle, so the engine
    raises the transfers in flight up to its ceiling."""
    src, dst = _FarSource("src.test"), MemStore("dst.test")
    src.chunk_size = 4096
    tags = [str(n) for n in range(60)]
    for tag in tags:
        src.add_image("acme/app", tag, image(tag.encode() * 500, config=b"config " + tag.encode()))
    engine = engine_for(src, dst, concurrency=2)
    engine._paced.pace.ceiling = 6
    results = await engine.run([spec(src, "acme/app", t, dst) for t in tags])
    assert statuses(results) == ["copied"] * len(tags)
    assert engine._paced.transfers.size == 6
    assert src.peak > 2
