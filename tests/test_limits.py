"""The throughput floor: a trickle fails within a window, a socket's own read timeout stays a
stall for the retry layer, and a floor of 0 is no floor."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from github_org_backup.base.limits import Limits, Pace, paced
from github_org_backup.errors import ConnectionBroken, TooSlow
from github_org_backup.stores.registry.answers import chunks

FAST = Limits(min_bytes_per_s=1000, speed_window_s=0.3)


def _trickle(every_s: float, count: int = 10**6) -> object:
    sent = 0

    async def read() -> bytes:
        nonlocal sent
        if sent == count:
            return b""
        sent += 1
        await asyncio.sleep(every_s)
        return b"x"

    return read


async def test_a_trickle_fails_at_the_end_of_its_first_window() -> None:
    """One byte every 0.1 s against 1000 B/s over 0.3 s windows: TooSlow after about 0.3 s."""
    started = time.monotonic()
    with pytest.raises(TooSlow, match=r"only \d+ bytes arrived in 0.3 s.*--min-speed"):
        async for _ in paced(FAST, "GET blob", _trickle(0.1)):  # type: ignore[arg-type]
            pass
    assert 0.25 < time.monotonic() - started < 1.0


async def test_a_silent_reader_fails_without_a_byte() -> None:
    """A read that never returns is cut off at the window's end."""

    async def never() -> bytes:
        await asyncio.sleep(3600)
        return b""

    with pytest.raises(TooSlow, match="only 0 bytes"):
        await Pace(FAST, "GET manifest").read(never)


async def test_a_fast_body_passes_many_windows() -> None:
    """Enough bytes in every window: the body is read to its end, however long it takes."""
    sent = 0

    async def read() -> bytes:  # cancellation-safe, as aiohttp's StreamReader.read is
        nonlocal sent
        if sent >= 40:
            return b""
        await asyncio.sleep(0.02)
        sent += 1
        return b"y" * 100  # 5000 B/s

    total = 0
    async for chunk in paced(FAST, "GET blob", read):
        total += len(chunk)
    assert total == 4000


async def test_a_consumer_pausing_between_reads_never_makes_the_source_slow() -> None:
    """An upload waiting out the destination's retries stops reading for longer than a
    window; only the time spent waiting for the source counts."""
    sent = 0

    async def read() -> bytes:
        nonlocal sent
        if sent == 4:
            return b""
        sent += 1
        return b"z" * 10

    total = 0
    async for chunk in paced(FAST, "GET blob", read):
        total += len(chunk)
        await asyncio.sleep(0.4)  # past the 0.3 s window, with only 10 bytes read
    assert total == 40


async def test_a_floor_of_zero_is_no_floor() -> None:
    """--min-speed 0: a trickle is read to its end."""
    off = Limits(min_bytes_per_s=0, speed_window_s=0.05)
    read = _trickle(0.02, count=8)
    assert [c async for c in paced(off, "GET blob", read)] == [b"x"] * 8  # type: ignore[arg-type]


@pytest.fixture
async def stalled_body() -> AsyncIterator[str]:
    """A server that sends 1 MiB of a 10 MiB body, then nothing."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(10 * 2**20)})
        await response.prepare(request)
        await response.write(b"x" * 2**20)
        await asyncio.sleep(2)
        return response

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/"
    await runner.cleanup()


@pytest.mark.parametrize("min_speed", [0, 10 * 1024])
async def test_a_socket_read_timeout_stays_a_resumable_break(
    stalled_body: str, min_speed: int
) -> None:
    """aiohttp's read timeout is a TimeoutError too: it must come out as ConnectionBroken (the
    transfer resumes), never be taken for the window's end, nor spin for ever at floor 0."""
    timeout = aiohttp.ClientTimeout(total=None, sock_read=0.5)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(stalled_body) as response,
    ):
        started = time.monotonic()
        received = 0
        with pytest.raises(ConnectionBroken):  # noqa: PT012 - the read loop is what raises
            async with asyncio.timeout(10):
                async for chunk in chunks(response, 65536, "GET blob", Limits(min_speed)):
                    received += len(chunk)
    assert received == 2**20
    assert time.monotonic() - started < 5


async def test_a_tag_list_page_over_4_mib_is_refused_unparsed() -> None:
    """A 5 MiB tags/list page of two-letter tags would parse into a million strings: refused."""
    from aioresponses import aioresponses

    from github_org_backup.errors import OverLimit
    from github_org_backup.model.reference import Registry
    from github_org_backup.stores.registry import RegistryClient

    tags = [f"{a}{b}" for a in "abcdefghij" for b in "abcdefghij"] * 9000
    body = json.dumps({"name": "app", "tags": tags})
    assert len(body) > 4 * 2**20
    with aioresponses() as mocked:
        mocked.get("https://r.example.com/v2/app/tags/list?n=1000", body=body)
        async with aiohttp.ClientSession() as session:
            client = RegistryClient(Registry("r.example.com"), session, None)
            with pytest.raises(OverLimit, match="exceeds the 4194304-byte limit"):
                await client.list_tags("app")


async def test_endless_tag_pages_stop_at_the_entry_cap() -> None:
    """Pages of 100,000 tags that always link a next one end once past 500,000 entries."""
    from aioresponses import aioresponses

    from github_org_backup.errors import OverLimit
    from github_org_backup.model.reference import Registry
    from github_org_backup.stores.registry import RegistryClient

    body = json.dumps({"name": "app", "tags": [f"t{n}" for n in range(100_000)]})
    link = {"Link": '</v2/app/tags/list?n=1000&last=x>; rel="next"'}
    with aioresponses() as mocked:
        mocked.get("https://r.example.com/v2/app/tags/list?n=1000", body=body, headers=link)
        mocked.get(
            "https://r.example.com/v2/app/tags/list?n=1000&last=x",
            body=body,
            headers=link,
            repeat=True,
        )
        async with aiohttp.ClientSession() as session:
            client = RegistryClient(Registry("r.example.com"), session, None)
            with pytest.raises(OverLimit, match="600000 entries"):
                await client.list_tags("app")
        assert sum(len(calls) for calls in mocked.requests.values()) == 6
