"""Bounds on what a registry may make the run read, hold or wait for.

A compromised source can claim any size, list without end or answer one byte at a time. Each
reader keeps its own bound from here:

- bodies: a blob never past ``max_blob_bytes`` (checked on the descriptor before a byte
  moves) nor past its descriptor's size; a token answer within ``MAX_TOKEN_BODY``; a listing
  within ``MAX_LISTING_PAGES`` pages of ``MAX_LISTING_PAGE_BYTES``, ``MAX_LISTING_BYTES`` and
  ``MAX_LISTING_ITEMS`` in all; an index, a manifest's blobs and one image's nested indexes
  within ``MAX_INDEX_CHILDREN`` descriptors;
- time: every body moves at ``min_bytes_per_s`` or more, averaged over windows of
  ``SPEED_WINDOW_S`` (a body that trickles fails within one window), and an image has
  ``image_timeout_s`` in all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sized
from dataclasses import dataclass

from github_org_backup.errors import OverLimit, TooSlow

GiB = 2**30
KiB = 2**10

MAX_TOKEN_BODY = 1 * 2**20
MAX_LISTING_PAGES = 1000
MAX_LISTING_BYTES = 32 * 2**20
MAX_LISTING_PAGE_BYTES = 4 * 2**20  # parsed at once: 4 MiB of two-letter tags is 800,000 strings
MAX_LISTING_ITEMS = 500_000
MAX_INDEX_CHILDREN = 4096
SPEED_WINDOW_S = 20.0

DEFAULT_MAX_BLOB_BYTES = 16 * GiB  # GHCR stores layers of up to 10 GB
DEFAULT_MIN_BYTES_PER_S = 10 * KiB
DEFAULT_IMAGE_TIMEOUT_S = 3600.0  # a 10 GB layer at 25 Mbit/s takes 53 minutes
DEFAULT_CONCURRENCY = 16  # images, blob transfers and manifest reads in flight, each


@dataclass(frozen=True)
class Limits:
    max_blob_bytes: int = DEFAULT_MAX_BLOB_BYTES
    min_bytes_per_s: int = DEFAULT_MIN_BYTES_PER_S
    speed_window_s: float = SPEED_WINDOW_S
    image_timeout_s: float = DEFAULT_IMAGE_TIMEOUT_S

    def check_sizes(self, blobs: Iterable[tuple[str, int]], manifest: str) -> None:
        """Refuse a manifest naming a blob over ``max_blob_bytes``, before any byte moves."""
        for digest, size in blobs:
            if size > self.max_blob_bytes:
                raise OverLimit(
                    f"blob {digest} of manifest {manifest} claims {size} bytes, over the "
                    f"{self.max_blob_bytes}-byte limit: nothing of it was copied; if the image "
                    "is real, raise --max-blob-size"
                )


class Pace:
    """The throughput floor of one body: each window of ``window_s`` spent waiting for it must
    bring enough bytes.

    Only time spent inside ``read`` counts: a consumer that pauses between reads (an upload
    waiting out the destination's retries) never makes the source look slow. ``read`` awaits
    one read, cut off at the end of the current window (so it must be safe to cancel, as
    aiohttp's ``StreamReader.read`` is: the bytes stay buffered); a window that ends short of
    ``min_bytes_per_s * window_s`` bytes raises TooSlow naming ``what``.
    """

    def __init__(self, limits: Limits, what: str) -> None:
        self._off = limits.min_bytes_per_s <= 0
        self._window = limits.speed_window_s
        self._needed = limits.min_bytes_per_s * limits.speed_window_s
        self._what = what
        self._waited = 0.0  # seconds spent in read() in this window
        self._got = 0

    async def read(self, read: Callable[[], Awaitable[bytes]]) -> bytes:
        if self._off:
            return await read()
        while True:
            remaining = self._window - self._waited
            if remaining <= 0:
                self._next_window()
                continue
            window = asyncio.timeout(remaining)
            started = time.monotonic()
            try:
                async with window:
                    chunk = await read()
            except TimeoutError:
                if not window.expired():
                    raise  # the socket's own read timeout: a stall for the retry layer
                self._waited = self._window
                continue
            finally:
                self._waited += time.monotonic() - started
            self._got += len(chunk)
            return chunk

    def _next_window(self) -> None:
        if self._got < self._needed:
            raise TooSlow(
                f"{self._what}: only {self._got} bytes arrived in {self._window:g} s, below "
                f"the floor of {self._needed / self._window / KiB:g} KiB/s (--min-speed): "
                "the registry stalled or trickles"
            )
        self._waited = 0.0
        self._got = 0


async def paced(
    limits: Limits, what: str, read: Callable[[], Awaitable[bytes]]
) -> AsyncIterator[bytes]:
    """Every chunk ``read`` returns until it returns b"", under one ``Pace``."""
    pace = Pace(limits, what)
    while chunk := await pace.read(read):
        yield chunk


@dataclass
class DescriptorBudget:
    """Child manifests one image may name across its whole tree of indexes: a nested index
    multiplies, so each level's own cap is not enough."""

    left: int = MAX_INDEX_CHILDREN

    def spend(self, count: int, digest: str) -> None:
        self.left -= count
        if self.left < 0:
            raise OverLimit(
                f"index {digest} brings the image's nested indexes past {MAX_INDEX_CHILDREN} "
                "child manifests in all: no real image has that many; not copied"
            )


def check_count(descriptors: Sized, what: str) -> None:
    if len(descriptors) > MAX_INDEX_CHILDREN:
        raise OverLimit(
            f"{what} lists {len(descriptors)} descriptors, over the limit of "
            f"{MAX_INDEX_CHILDREN}: no real image has that many; nothing of it was copied"
        )
