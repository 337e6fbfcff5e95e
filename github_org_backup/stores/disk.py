"""Files written into place whole, and a file system's refusal to write as an error that
names the path and what to do."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import tempfile
from collections.abc import AsyncGenerator, AsyncIterable, Iterator
from pathlib import Path
from typing import BinaryIO

from github_org_backup.errors import LayoutWriteError, SizeMismatch
from github_org_backup.model.oci import Descriptor

_ADVICE = {
    errno.ENOSPC: "free space or choose another destination",
    errno.EDQUOT: "raise the quota, free space or choose another destination",
    errno.EFBIG: "raise the file size limit (ulimit -f) or choose another destination",
    errno.EROFS: "mount it writable or choose another destination",
    errno.EACCES: "let this user write there or choose another destination",
    errno.EPERM: "let this user write there or choose another destination",
}


def write_refused(exc: OSError, path: Path) -> LayoutWriteError:
    """``no space left on device writing PATH: free space or choose another destination``."""
    words = (os.strerror(exc.errno) if exc.errno else exc.strerror or str(exc)).lower()
    advice = _ADVICE.get(exc.errno or 0, "check that file system or choose another destination")
    return LayoutWriteError(f"{words} writing {path}: {advice}")


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Within the block, an OSError is a LayoutWriteError naming ``path``."""
    try:
        yield
    except OSError as exc:
        raise write_refused(exc, path) from None


async def write_atomically(path: Path, chunks: AsyncIterable[bytes], blob: Descriptor) -> None:
    """Stream ``chunks`` into a temporary file beside ``path``, renamed into place only once
    all ``blob.size`` bytes are on disk. A write the file system refuses is a LayoutWriteError
    naming ``path``; on any failure or cancellation the temporary file goes at once, so no
    partial file stays. An error of ``chunks`` (the source) passes as it is."""
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    handle = os.fdopen(fd, "wb")
    try:
        async for data in chunks:
            with writing(path):
                await asyncio.to_thread(handle.write, data)
        with writing(path):
            await asyncio.to_thread(_commit, handle, tmp, path, blob)
    except BaseException:
        with contextlib.suppress(OSError):
            handle.close()  # what it still buffers goes with the file
        _discard(tmp)  # at once, not in a thread: a cancelled write leaves nothing behind
        if isinstance(chunks, AsyncGenerator):  # the source's file or connection, closed now
            with contextlib.suppress(Exception):
                await chunks.aclose()
        raise


def _commit(handle: BinaryIO, tmp: str, path: Path, blob: Descriptor) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()
    if os.path.getsize(tmp) != blob.size:
        raise SizeMismatch(f"blob {blob.digest} was cut short")
    os.replace(tmp, path)


def _discard(tmp: str) -> None:
    Path(tmp).unlink(missing_ok=True)
