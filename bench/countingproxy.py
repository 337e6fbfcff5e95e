"""A streaming HTTP proxy that counts requests and body bytes in each direction.

With ``rtt_s`` it also stands for a wide-area link: each request waits half the round trip
before it reaches the upstream, and its answer half the round trip before it reaches the
client. With a ``link`` (a `Link`, shared by every proxy of a run) the bytes are also paced:
answer bodies cross the link's ``down`` budget and request bodies its ``up`` budget, so a
link of N bytes/s is N bytes/s each way, as the copying tool's own access link would be.

Each proxy also logs its exchanges (`Exchange`: when each request arrived and when its answer
was finished) since its last `reset`, for the timing of a run's round trips.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.harness.registry import RegistryProcess

import asyncio
import threading
import time
import urllib.parse
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from tests.harness.background import BackgroundLoop

CHUNK = 1024 * 1024


@dataclass
class Counts:
    requests: int = 0
    bytes_in: int = 0  # request bodies: what a client wrote
    bytes_out: int = 0  # response bodies: what a client read
    by_method: dict[str, int] = field(default_factory=dict)

    def snapshot(self) -> Counts:
        return Counts(self.requests, self.bytes_in, self.bytes_out, dict(self.by_method))

    def since(self, before: Counts) -> Counts:
        return Counts(
            self.requests - before.requests,
            self.bytes_in - before.bytes_in,
            self.bytes_out - before.bytes_out,
            {k: v - before.by_method.get(k, 0) for k, v in self.by_method.items()},
        )


@dataclass(frozen=True)
class Exchange:
    method: str
    path: str
    query: str  # decoded: a token request's scopes name the repositories
    status: int
    received: float  # time.monotonic() when the request arrived
    answered: float  # time.monotonic() when its answer's last byte was written


class _Budget:
    """One direction of a link: callers wait until their bytes would have crossed it.

    Proxies run on event loops of their own threads, hence the lock. An idle link earns no
    credit, so nothing bursts above the rate.
    """

    def __init__(self, bandwidth: float) -> None:
        self.bandwidth = bandwidth
        self._free_at = 0.0
        self._lock = threading.Lock()

    async def cross(self, size: int) -> None:
        with self._lock:
            now = time.monotonic()
            self._free_at = max(self._free_at, now) + size / self.bandwidth
            wait = self._free_at - now
        if wait > 0:
            await asyncio.sleep(wait)


class Link:
    """A full-duplex link of ``bandwidth`` bytes/s each way, shared by the proxies given it."""

    def __init__(self, bandwidth: float) -> None:
        self.bandwidth = bandwidth
        self.down = _Budget(bandwidth)  # answers: what the client reads
        self.up = _Budget(bandwidth)  # request bodies: what the client writes


class CountingProxy:
    def __init__(
        self,
        upstream: str,
        registry: RegistryProcess | None = None,
        *,
        rtt_s: float = 0.0,
        link: Link | None = None,
    ) -> None:
        self.upstream = upstream
        self.registry = registry  # what stands behind it, for the benchmark's bookkeeping
        self.counts = Counts()
        self.rtt_s = rtt_s  # may change between runs
        self.link = link  # may change between runs
        self.log: list[Exchange] = []

    def reset(self) -> None:
        """Forget the logged exchanges (the counts go on: runs take `Counts.since`)."""
        self.log = []

    @property
    def first_request(self) -> float | None:
        return min((e.received for e in self.log), default=None)

    @property
    def last_answer(self) -> float | None:
        return max((e.answered for e in self.log), default=None)

    def start(self) -> CountingProxy:
        self._background = BackgroundLoop()
        self._session = self._background.session(
            auto_decompress=False,
            limit=0,
            timeout=aiohttp.ClientTimeout(total=None),
        )
        app = web.Application(client_max_size=2**40)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.port = self._background.serve(app)
        return self

    def stop(self) -> None:
        self._background.stop()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def _request_body(self, request: web.Request):  # type: ignore[no-untyped-def]
        async for chunk in request.content.iter_chunked(CHUNK):
            self.counts.bytes_in += len(chunk)
            if self.link is not None:
                await self.link.up.cross(len(chunk))
            yield chunk

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        received = time.monotonic()
        self.counts.requests += 1
        self.counts.by_method[request.method] = self.counts.by_method.get(request.method, 0) + 1
        # A multidict: clients such as skopeo send one Accept header per media type.
        headers = CIMultiDict(
            (k, v) for k, v in request.headers.items() if k.lower() not in ("host", "connection")
        )
        body = self._request_body(request) if request.can_read_body else None
        if self.rtt_s:
            await asyncio.sleep(self.rtt_s / 2)  # the request crossing the link
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=body,
            allow_redirects=False,
        ) as upstream:
            out = {
                k: v
                for k, v in upstream.headers.items()
                if k.lower() not in ("transfer-encoding", "connection")
            }
            if "Location" in out:
                out["Location"] = out["Location"].replace(self.upstream, f"http://{self.host}")
            if self.rtt_s:
                await asyncio.sleep(self.rtt_s / 2)  # the answer crossing back
            response = web.StreamResponse(status=upstream.status, headers=out)
            if upstream.content_length is not None:
                response.content_length = upstream.content_length
            await response.prepare(request)
            try:
                if request.method != "HEAD":
                    async for chunk in upstream.content.iter_chunked(CHUNK):
                        self.counts.bytes_out += len(chunk)
                        if self.link is not None:
                            await self.link.down.cross(len(chunk))
                        await response.write(chunk)
                await response.write_eof()
            except ConnectionResetError:
                pass  # the client left with the headers (skopeo, after the /v2/ ping's 401)
            self.log.append(
                Exchange(
                    request.method,
                    request.path,
                    urllib.parse.unquote_plus(request.query_string),
                    upstream.status,
                    received,
                    time.monotonic(),
                )
            )
            return response
