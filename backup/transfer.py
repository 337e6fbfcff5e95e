"""Move one blob: source GET streamed into a destination upload, verified on the way.

A broken source read resumes with ``Range: bytes=N-`` when the source answers 206 from N;
otherwise the whole transfer restarts from zero in a new upload session (a session that saw
a broken PUT cannot be reused). Size and digest are checked on every byte that passes.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import structlog
import yarl

from backup.errors import ContentError, DigestMismatch, SizeMismatch, TransientError
from backup.oci import Descriptor
from backup.registry import RegistryClient, resumed_at
from backup.report import Stats
from backup.retry import RETRYABLE_EXCEPTIONS, RetryPolicy

log = structlog.get_logger("backup.transfer")

READ_CHUNK = 1024 * 1024
SOURCE_RESUMES = 5
# A flipped bit on the wire shows up as a digest mismatch: worth another attempt.
RETRYABLE_TRANSFER_ERRORS: tuple[type[BaseException], ...] = (
    TransientError,
    ContentError,
    *RETRYABLE_EXCEPTIONS,
)


class _SourceIgnoredRange(TransientError):
    """The source answered a ranged GET from the start: bytes already sent cannot be undone."""


@dataclass
class _Endpoint:
    client: RegistryClient
    repository: str


class _SourceStream:
    """The blob's bytes from the source, hashed and counted, resuming after breaks."""

    def __init__(self, source: _Endpoint, blob: Descriptor, stats: Stats) -> None:
        self._source = source
        self._blob = blob
        self._stats = stats
        self._hash = hashlib.new(blob.digest.partition(":")[0])
        self.received = 0
        self.error: BaseException | None = None

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            resumes = 0
            while True:
                try:
                    async for chunk in self._read_from(self.received):
                        yield chunk
                    break
                except RETRYABLE_EXCEPTIONS as exc:
                    if resumes == SOURCE_RESUMES or self.received == 0:
                        raise
                    resumes += 1
                    log.warning(
                        "blob_read_resumed",
                        digest=self._blob.digest,
                        offset=self.received,
                        error=type(exc).__name__,
                    )
            self.check()
        except Exception as exc:  # not CancelledError: aiohttp cancels the writer on early replies
            self.error = exc
            raise

    async def _read_from(self, offset: int) -> AsyncIterator[bytes]:
        client, name = self._source.client, self._source.repository
        async with client.open_blob(name, self._blob.digest, offset) as response:
            if offset and not resumed_at(response, offset):
                raise _SourceIgnoredRange(
                    f"source did not resume {self._blob.digest} at byte {offset}"
                )
            async for chunk in response.content.iter_chunked(READ_CHUNK):
                self._take(chunk)
                yield chunk

    def _take(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self.received > self._blob.size:
            raise SizeMismatch(
                f"blob {self._blob.digest} is longer than its {self._blob.size} bytes"
            )
        self._hash.update(chunk)
        self._stats.bytes_copied += len(chunk)

    def check(self) -> None:
        if self.received != self._blob.size:
            raise SizeMismatch(
                f"blob {self._blob.digest} ended after {self.received} of {self._blob.size} bytes"
            )
        actual = f"{self._hash.name}:{self._hash.hexdigest()}"
        if actual != self._blob.digest:
            raise DigestMismatch(f"blob expected as {self._blob.digest} hashes to {actual}")


class BlobTransfer:
    """One blob from a source repository into a destination repository."""

    def __init__(
        self,
        source: RegistryClient,
        source_repository: str,
        target: RegistryClient,
        target_repository: str,
        blob: Descriptor,
        stats: Stats,
        chunk_size: int | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self._policy = policy or RetryPolicy()
        self._source = _Endpoint(source, source_repository)
        self._target = _Endpoint(target, target_repository)
        self._blob = blob
        self._stats = stats
        self._chunk_size = chunk_size

    async def run(self, session: yarl.URL | None = None) -> None:
        """Copy the blob, using ``session`` (e.g. from a failed mount) for the first attempt."""
        target, name = self._target.client, self._target.repository
        for attempt in range(1, self._policy.attempts + 1):
            upload = session or await target.start_upload(name)
            session = None  # a session that saw a failure is never reused
            stream = _SourceStream(self._source, self._blob, self._stats)
            try:
                try:
                    if self._chunk_size:
                        await self._upload_chunked(upload, stream)
                    else:
                        await target.put_blob(name, upload, self._blob, stream.chunks())
                except BaseException:
                    if stream.error is not None:  # the real cause, not aiohttp's wrapper
                        raise stream.error from None
                    raise
                stream.check()
                return
            except RETRYABLE_TRANSFER_ERRORS as exc:
                if attempt == self._policy.attempts:
                    raise TransientError(
                        f"blob {self._blob.digest} to {target.registry}/{name} failed "
                        f"{attempt} times, last: {type(exc).__name__}: {exc}"
                    ) from None
                delay = self._policy.delay(attempt)
                log.warning(
                    "blob_transfer_retry",
                    digest=self._blob.digest,
                    attempt=attempt,
                    error=type(exc).__name__,
                    delay_s=round(delay, 2),
                )
                await asyncio.sleep(delay)

    async def _upload_chunked(self, location: yarl.URL, stream: _SourceStream) -> None:
        """PATCH bounded chunks (for proxies that limit request bodies), then close the upload."""
        assert self._chunk_size is not None
        target, name = self._target.client, self._target.repository
        buffer = bytearray()
        offset = 0
        async for data in stream.chunks():
            buffer += data
            while len(buffer) >= self._chunk_size:
                chunk = bytes(buffer[: self._chunk_size])
                location = await target.patch_chunk(name, location, chunk, offset)
                offset += len(chunk)
                del buffer[: self._chunk_size]
        if buffer:
            location = await target.patch_chunk(name, location, bytes(buffer), offset)
        stream.check()
        await target.finish_upload(name, location, self._blob)
