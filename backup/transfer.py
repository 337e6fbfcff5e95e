"""Move one blob from a source store into a destination store, verified on the way.

A broken source read resumes at the byte it stopped at when the source can start there;
otherwise the whole transfer restarts from zero in a new upload (a session that saw a broken
write is never reused). Size and digest are checked on every byte that passes.

A size or digest mismatch is retried only when the bytes came over a network: read from a
local OCI layout, the same wrong bytes would come back every time, so the error is final.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

import structlog

from backup.errors import ContentError, DigestMismatch, SizeMismatch, TransientError
from backup.oci import Descriptor
from backup.report import Stats
from backup.retry import RETRYABLE_EXCEPTIONS, RetryPolicy
from backup.store import Store

log = structlog.get_logger("backup.transfer")

SOURCE_RESUMES = 5
# A flipped bit on the wire shows up as a digest mismatch: worth another attempt.
RETRYABLE_TRANSFER_ERRORS: tuple[type[BaseException], ...] = (
    TransientError,
    ContentError,
    *RETRYABLE_EXCEPTIONS,
)


class _SourceStream:
    """The blob's bytes from the source, hashed and counted, resuming after breaks."""

    def __init__(self, source: Store, name: str, blob: Descriptor, stats: Stats) -> None:
        self._source = source
        self._name = name
        self._blob = blob
        self._stats = stats
        self._hash = hashlib.new(blob.digest.partition(":")[0])
        self.received = 0
        self.error: Exception | None = None

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            resumes = 0
            while True:
                try:
                    async with self._source.read_blob(
                        self._name, self._blob.digest, self.received
                    ) as reader:
                        async for chunk in reader:
                            self._take(chunk)
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
            self.error = SizeMismatch(
                f"blob {self._blob.digest} ended after {self.received} of {self._blob.size} bytes"
            )
            raise self.error
        actual = f"{self._hash.name}:{self._hash.hexdigest()}"
        if actual != self._blob.digest:
            self.error = DigestMismatch(f"blob expected as {self._blob.digest} hashes to {actual}")
            raise self.error


async def transfer_blob(
    source: Store,
    source_name: str,
    target: Store,
    target_name: str,
    blob: Descriptor,
    stats: Stats,
    session: object | None = None,
    policy: RetryPolicy | None = None,
) -> None:
    """Copy one blob, using ``session`` (e.g. from a failed mount) for the first attempt."""
    policy = policy or target.policy
    for attempt in range(1, policy.attempts + 1):
        stream = _SourceStream(source, source_name, blob, stats)
        try:
            try:
                await target.write_blob(target_name, blob, stream.chunks(), session)
            except BaseException:
                if stream.error is not None:  # the real cause, not the HTTP client's wrapper
                    raise stream.error from None
                raise
            stream.check()
            return
        except RETRYABLE_TRANSFER_ERRORS as exc:
            session = None  # a session that saw a failure is never reused
            if source.registry.layout and isinstance(exc, ContentError) and exc is stream.error:
                raise type(exc)(
                    f"{exc} (read from {source.registry}: the layout is damaged, "
                    "or the manifest naming this blob is wrong)"
                ) from None
            if attempt == policy.attempts:
                raise TransientError(
                    f"blob {blob.digest} to {target.registry}/{target_name} failed "
                    f"{attempt} times, last: {type(exc).__name__}: {exc}"
                ) from None
            delay = policy.delay(attempt)
            log.warning(
                "blob_transfer_retry",
                digest=blob.digest,
                attempt=attempt,
                error=type(exc).__name__,
                delay_s=round(delay, 2),
            )
            await asyncio.sleep(delay)
