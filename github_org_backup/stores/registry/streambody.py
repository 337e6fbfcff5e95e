"""A streamed request body that is sent at most once, and exactly as long as it says.

aiohttp sends a PUT again by itself when its connection breaks (it counts PUT as idempotent),
with the same body object. A stream has spent its first bytes by then, so the second request
would carry fewer bytes than its Content-Length; a server still waiting for the rest then reads
the next request on that connection as body (and the proxy in the fault tests logged
BadHttpMethod). Refusing the second send fails the request instead, and a failed request body
closes its connection; the caller starts the blob again in a new upload session.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import AsyncIterablePayload

from github_org_backup.errors import BodySpent, SizeMismatch


class OneShotBody(AsyncIterablePayload):
    """An async-iterable payload that refuses a second send."""

    _sends = 0

    async def write(self, writer: AbstractStreamWriter) -> None:  # aiohttp before 3.12
        await self.write_with_length(writer, None)

    async def write_with_length(
        self, writer: AbstractStreamWriter, content_length: int | None
    ) -> None:
        self._sends += 1
        if self._sends > 1:
            raise BodySpent("a streamed body cannot be sent twice; the upload starts again")
        parent: Any = getattr(super(), "write_with_length", None)
        if parent is None:  # aiohttp before 3.12
            await super().write(writer)
        else:
            await parent(writer, content_length)


async def exactly(chunks: AsyncIterable[bytes], size: int, what: str) -> AsyncIterator[bytes]:
    """``chunks``, failing (so that the connection is dropped) unless they total ``size``.

    aiohttp would otherwise end a short body as if it were complete, and pool its connection.
    """
    sent = 0
    async for chunk in chunks:
        sent += len(chunk)
        if sent > size:
            raise SizeMismatch(f"{what} is longer than its {size} bytes")
        yield chunk
    if sent != size:
        raise SizeMismatch(f"{what} ended after {sent} of {size} bytes")
