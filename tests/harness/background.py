"""aiohttp servers beside synchronous tests: an event loop in a daemon thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

T = TypeVar("T")


class BackgroundLoop:
    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._runners: list[web.AppRunner] = []
        self._sessions: list[aiohttp.ClientSession] = []
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def __enter__(self) -> BackgroundLoop:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(30)

    def session(self, **options: Any) -> aiohttp.ClientSession:
        """A client session living on this loop (``limit`` sizes its connection pool)."""
        limit = options.pop("limit", 100)

        async def make() -> aiohttp.ClientSession:
            return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit), **options)

        session = self.run(make())
        self._sessions.append(session)
        return session

    def serve(self, app: web.Application) -> int:
        """Serve ``app`` on a free loopback port; return the port."""

        async def start() -> int:
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self._runners.append(runner)
            return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

        return self.run(start())

    def stop(self) -> None:
        async def close() -> None:
            for runner in self._runners:
                await runner.cleanup()
            for session in self._sessions:
                await session.close()

        if self._loop.is_closed():
            return
        self.run(close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()  # else its sockets leak, as ResourceWarnings at exit
