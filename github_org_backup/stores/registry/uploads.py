"""Blob uploads: one streamed PUT per blob, or PATCH chunks then an empty PUT.

A proxy in front of a registry may limit request bodies (nginx ``client_max_body_size``).
After a 413 the registry gets chunks below the refused size, halving on every further 413,
down to a floor. A PATCH broken on the way resumes at the offset the registry reports holding.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable

import structlog
import yarl

from github_org_backup.errors import BackupError, BodyTooLarge, RegistryError, TransientError
from github_org_backup.model.oci import Descriptor
from github_org_backup.stores.protocol import UploadSession
from github_org_backup.stores.registry.answers import expect
from github_org_backup.stores.registry.auth import repository_scope
from github_org_backup.stores.registry.streambody import OneShotBody, exactly
from github_org_backup.stores.registry.transport import Transport

log = structlog.get_logger("github_org_backup.stores.registry")

# After a 413: chunks start below the refused size and at most this, halving on each 413.
_FALLBACK_FIRST_CHUNK = 16 * 2**20
_FALLBACK_MIN_CHUNK = 16 * 2**10


def with_digest(location: yarl.URL, digest: str) -> yarl.URL:
    """The upload URL that commits ``digest``: appended to the registry's own query, which
    carries the session state and must not be rebuilt or re-quoted."""
    separator = "&" if location.raw_query_string else "?"
    return yarl.URL(f"{location}{separator}digest={digest}", encoded=True)


def push(name: str) -> tuple[str, ...]:
    return (repository_scope(name, "pull,push"),)


class Uploads:
    """Blob uploads to one registry; ``chunk_size`` None means one PUT per blob."""

    def __init__(self, transport: Transport, chunk_size: int | None) -> None:
        self._transport = transport
        self.chunk_size = chunk_size

    async def write_blob(
        self,
        name: str,
        blob: Descriptor,
        chunks: AsyncIterable[bytes],
        session: UploadSession | None,
    ) -> None:
        """Upload in one streamed PUT, or in PATCH chunks when ``chunk_size`` is set.

        A 413 to the one-PUT upload (a proxy's body limit, e.g. nginx ``client_max_body_size``)
        switches this registry to chunks below the refused size; the stream is spent, so the
        caller sends the blob again in a new session (TransientError).
        """
        if session is not None and session.location:
            location = yarl.URL(session.location, encoded=True)
        else:
            location = await self.start_upload(name)
        if self.chunk_size:
            await self.write_chunks(name, location, blob, chunks)
            return
        try:
            await self.put_blob(name, location, blob, chunks)
        except BodyTooLarge:
            self.shrink(blob.size)
            await self.cancel(name, location)
            raise TransientError(
                f"{self._transport.registry} refused a {blob.size}-byte request body "
                f"(HTTP 413); blob {blob.digest} is sent again in chunks of "
                f"{self.chunk_size} bytes"
            ) from None

    async def start_upload(self, name: str) -> yarl.URL:
        """POST a new upload session; its Location."""
        url = yarl.URL(
            f"{self._transport.registry.base_url}/v2/{name}/blobs/uploads/", encoded=True
        )
        operation = "POST blob upload"
        async with await self._transport.request(
            "POST", url, operation=operation, scopes=push(name)
        ) as resp:
            await expect(
                self._transport.registry,
                resp,
                (202,),
                f"start upload to {name}",
                operation=operation,
            )
            return self._transport.location(resp, operation)

    async def put_blob(
        self, name: str, location: yarl.URL, descriptor: Descriptor, body: AsyncIterable[bytes]
    ) -> None:
        """Finish an upload session with the whole body in one PUT (monolithic upload)."""
        url = with_digest(location, descriptor.digest)
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(descriptor.size),
        }
        data = OneShotBody(exactly(body, descriptor.size, f"blob {descriptor.digest}"))
        async with await self._transport.request(
            "PUT", url, operation="PUT blob", scopes=push(name), headers=headers, data=data
        ) as resp:
            await expect(
                self._transport.registry,
                resp,
                (201, 204),
                f"PUT blob {name}@{descriptor.digest}",
                operation="PUT blob",
            )

    async def write_chunks(
        self, name: str, location: yarl.URL, blob: Descriptor, chunks: AsyncIterable[bytes]
    ) -> None:
        """Send the stream in chunks of ``chunk_size`` bytes, then commit the digest."""
        buffer = bytearray()
        offset = 0
        async for data in chunks:
            buffer += data
            while self.chunk_size and len(buffer) >= self.chunk_size:
                size = self.chunk_size
                location = await self._patch_fitting(name, location, bytes(buffer[:size]), offset)
                offset += size
                del buffer[:size]
        if buffer:
            location = await self._patch_fitting(name, location, bytes(buffer), offset)
        await self.finish_upload(name, location, blob)

    async def _patch_fitting(
        self, name: str, location: yarl.URL, data: bytes, offset: int
    ) -> yarl.URL:
        """PATCH ``data``, in smaller pieces for as long as the registry answers 413."""
        sent = 0
        # Not a retry: each pass sends the next piece, or the same one smaller after a 413.
        while sent < len(data):
            piece = data[sent : sent + (self.chunk_size or len(data))]
            try:
                location = await self.patch_chunk(name, location, piece, offset + sent)
            except BodyTooLarge:  # refused before it reached the registry: same session
                self.shrink(len(piece))
                continue
            sent += len(piece)
        return location

    def shrink(self, refused: int) -> None:
        """After a 413 for ``refused`` bytes: chunks below that, at most 16 MiB, never grown."""
        size = min(_FALLBACK_FIRST_CHUNK, _power_of_two_below(refused))
        if self.chunk_size:
            size = min(size, self.chunk_size)
        registry = self._transport.registry
        if size < _FALLBACK_MIN_CHUNK:
            raise BodyTooLarge(
                f"{registry} refuses request bodies of {refused} bytes (HTTP 413), even "
                "as upload chunks: raise its body limit (nginx: client_max_body_size)",
                status=413,
                operation="PATCH blob upload" if self.chunk_size else "PUT blob",
            )
        if self.chunk_size is None:  # once per registry and run
            log.warning(
                "upload_switched_to_chunks",
                registry=str(registry),
                refused_bytes=refused,
                chunk_size=size,
                hint="a proxy limits request bodies (HTTP 413); raise client_max_body_size "
                "or set --chunk-size",
            )
        else:
            log.info("upload_chunk_size_reduced", registry=str(registry), chunk_size=size)
        self.chunk_size = size

    async def cancel(self, name: str, location: yarl.URL) -> None:
        """Best effort: end an upload session the registry never saw a byte of."""
        with contextlib.suppress(BackupError):
            (
                await self._transport.request(
                    "DELETE", location, operation="DELETE blob upload", scopes=push(name)
                )
            ).release()

    async def patch_chunk(
        self, name: str, location: yarl.URL, data: bytes, offset: int
    ) -> yarl.URL:
        """PATCH one chunk of a chunked upload; resume at the registry's Range after a break.

        Returns the session's next Location. Raises TransientError when the session cannot be
        resumed (the caller starts a new one).
        """
        sent = 0
        # Not ``retrying``: each pass resumes at the offset the registry reports. The PATCH
        # itself is never resent blindly: distribution 2.8 appends a PATCH body whatever its
        # Content-Range says, so one that timed out after it was applied would be doubled.
        for attempt in range(1, self._transport.policy.attempts + 1):
            body = data[sent:]
            headers = {
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{offset + sent}-{offset + len(data) - 1}",
                "Content-Length": str(len(body)),
            }
            try:
                async with await self._transport.request(
                    "PATCH",
                    location,
                    operation="PATCH blob upload",
                    scopes=push(name),
                    headers=headers,
                    data=body,
                    idempotent=False,
                ) as resp:
                    await expect(
                        self._transport.registry,
                        resp,
                        (202, 204),
                        f"PATCH upload to {name}",
                        operation="PATCH blob upload",
                    )
                    return self._transport.location(resp, "PATCH blob upload")
            except TransientError:
                await asyncio.sleep(self._transport.policy.delay(attempt))
                location, received = await self.upload_status(name, location)
                if received is None or not offset <= received <= offset + len(data):
                    raise
                sent = received - offset
                log.warning("upload_resumed", repository=name, offset=received)
                if sent == len(data):
                    return location
        raise TransientError(f"PATCH upload to {name} kept failing", operation="PATCH blob upload")

    async def upload_status(self, name: str, location: yarl.URL) -> tuple[yarl.URL, int | None]:
        """How many bytes an upload session holds (``Range: 0-N``), and its current Location.

        None when the answer cannot tell: distribution reports both an empty session and one
        holding a single byte as ``0-0``.
        """
        operation = "GET blob upload"
        try:
            async with await self._transport.request(
                "GET", location, operation=operation, scopes=push(name)
            ) as resp:
                await expect(
                    self._transport.registry,
                    resp,
                    (204,),
                    f"upload status in {name}",
                    operation=operation,
                )
                held = resp.headers.get("Range", "0--1")
                if held == "0-0":
                    return self._transport.location(resp, operation), None
                return self._transport.location(resp, operation), int(held.rpartition("-")[2]) + 1
        except RegistryError as exc:
            raise TransientError(
                f"upload session in {name} cannot be resumed",
                status=exc.status,
                operation=operation,
                errors=exc.errors,
            ) from None
        except ValueError:
            raise TransientError(
                f"upload session in {name} cannot be resumed", operation=operation
            ) from None

    async def finish_upload(self, name: str, location: yarl.URL, descriptor: Descriptor) -> None:
        """Close a chunked upload with an empty PUT naming the digest."""
        url = with_digest(location, descriptor.digest)
        headers = {"Content-Type": "application/octet-stream", "Content-Length": "0"}
        async with await self._transport.request(
            "PUT", url, operation="PUT blob", scopes=push(name), headers=headers, data=b""
        ) as resp:
            await expect(
                self._transport.registry,
                resp,
                (201, 204),
                f"PUT blob {name}@{descriptor.digest}",
                operation="PUT blob",
            )


def _power_of_two_below(size: int) -> int:
    """The largest power of two strictly below ``size`` (1 for sizes up to 2)."""
    return 1 << max((size - 1).bit_length() - 1, 0)
