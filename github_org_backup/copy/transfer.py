"""Move one blob from a source store into a destination store, verified on the way.

A broken source read resumes at the byte it stopped at when the source can start there;
otherwise the whole transfer restarts from zero in a new upload (a session that saw a broken
write is never reused). Size and digest are checked on every byte that passes.

A size or digest mismatch is retried only when the bytes came over a network: read from a
local OCI layout, the same wrong bytes would come back every time, so the error is final.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator

import structlog

from github_org_backup.base.retry import RetryPolicy, retrying
from github_org_backup.errors import (
    ConnectionBroken,
    ContentError,
    DigestMismatch,
    RegistryError,
    SizeMismatch,
    TransientError,
)
from github_org_backup.model.oci import Descriptor
from github_org_backup.output.report import Stats
from github_org_backup.stores.protocol import Store, UploadSession

log = structlog.get_logger("github_org_backup.copy.transfer")

SOURCE_RESUMES = 5
# A flipped bit on the wire shows up as a digest mismatch: worth another attempt.
RETRYABLE_TRANSFER_ERRORS: tuple[type[BaseException], ...] = (TransientError, ContentError)


class _SourceStream:
    """The blob's bytes from the source, hashed and counted, resuming after breaks."""

    def __init__(self, source: Store, name: str, blob: Descriptor, stats: Stats) -> None:
        self._source = source
        self._name = name
        self._blob = blob
        self._stats = stats
        self._hash = hashlib.new(blob.digest.partition(":")[0])
        self.received = 0
        self.started = time.monotonic()
        self.first_byte_at: float | None = None
        self.error: Exception | None = None

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            resumes = 0
            # Not ``retrying``: a resume goes on at the byte reached, at once, in the same upload.
            while True:
                try:
                    async with self._source.read_blob(
                        self._name, self._blob.digest, self.received
                    ) as reader:
                        async for chunk in reader:
                            self._take(chunk)
                            yield chunk
                    break
                except ConnectionBroken as exc:
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
        if self.first_byte_at is None:
            self.first_byte_at = time.monotonic()
        self.received += len(chunk)
        if self.received > self._blob.size:
            raise SizeMismatch(
                f"blob {self._blob.digest} is longer than its {self._blob.size} bytes"
            )
        self._hash.update(chunk)
        self._stats.bytes_transferred += len(chunk)

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
    session: UploadSession | None = None,
    policy: RetryPolicy | None = None,
) -> float:
    """Copy one blob, using ``session`` (e.g. from a failed mount) for the first attempt.

    Returns the set-up time of the attempt that succeeded: from its start to its first byte.
    """
    setup: list[float] = []

    async def attempt(number: int) -> None:
        stream = _SourceStream(source, source_name, blob, stats)
        try:
            # A session that saw a failure is never reused.
            upload = session if number == 1 else None
            try:
                await target.write_blob(target_name, blob, stream.chunks(), upload)
            except BaseException:
                if stream.error is not None:  # the real cause, not the HTTP client's wrapper
                    raise stream.error from None
                raise
            stream.check()
            setup.append((stream.first_byte_at or time.monotonic()) - stream.started)
        except ContentError as exc:
            if source.registry.layout and exc is stream.error:
                raise _Final(
                    type(exc)(
                        f"{exc} (read from {source.registry}: the layout is damaged, "
                        "or the manifest naming this blob is wrong)"
                    )
                ) from None
            raise

    def log_retry(number: int, exc: BaseException, delay: float) -> None:
        log.warning(
            "blob_transfer_retry",
            digest=blob.digest,
            attempt=number,
            error=type(exc).__name__,
            delay_s=round(delay, 2),
        )

    def failed(number: int, exc: BaseException) -> BaseException:
        # A registry's error says what it is; anything else is named by its kind.
        last = str(exc) if isinstance(exc, RegistryError) else f"{type(exc).__name__}: {exc}"
        return TransientError(
            f"blob {blob.digest} to {target.registry}/{target_name} failed {number} times, "
            f"last: {last}"
        )

    try:
        await retrying(
            policy or RetryPolicy(),
            attempt,
            retry_on=RETRYABLE_TRANSFER_ERRORS,
            on_retry=log_retry,
            exhausted=failed,
        )
    except _Final as final:
        raise final.error from None
    return setup[-1]


class _Final(Exception):
    """Carries an error that no retry can fix past ``retrying``: read from a local layout, the
    same wrong bytes would come back every time."""

    def __init__(self, error: ContentError) -> None:
        super().__init__(str(error))
        self.error = error
