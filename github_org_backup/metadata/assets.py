"""Release assets: their bytes as GitHub serves them, checked, kept once by digest.

The API's asset URL, asked with ``Accept: application/octet-stream``, answers 302 to a
storage host on another domain with a signed query. That request carries the token and goes
only to the API; the storage host gets a request of its own with no credentials at all (S3-style
storage refuses one that carries ``Authorization``). The bytes stream into a temporary file
beside the store's assets, hashed as they come, and are kept as ``sha256/HEX`` only if their
length is the asset's ``size`` and their digest its ``digest``; otherwise the file is removed
and the asset fails alone. The signed query never reaches a log line or an error.

A storage host can trickle bytes just fast enough to beat the socket timeout. Each read takes
only what one socket read brings, so the clock and a stop are checked between any two bytes'
arrivals, and a download has a deadline from its size: a minute, plus a second per 64 KiB.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3

from github_org_backup.base.redact import redact_url
from github_org_backup.errors import (
    AssetMismatch,
    DiscoveryStopped,
    GitHubAnswerInvalid,
    GitHubUnavailable,
)

OCTET_STREAM = "application/octet-stream"
_READ = 64 * 1024  # at most this much per socket read
_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
# GitHub keeps release assets under 2 GiB each: a larger size is not GitHub's to give.
MAX_ASSET_BYTES = 2 * 1024**3
# A download gets this long, plus its size at this rate, then is abandoned.
_GRACE_S = 60.0
_MIN_AVERAGE_BPS = 64 * 1024


@dataclass(frozen=True)
class Asset:
    """A release asset as the store needs it, from GitHub's asset object."""

    id: int
    name: str
    size: int
    sha256: str | None  # GitHub's digest, when the asset object carries one
    updated_at: str

    @classmethod
    def from_api(cls, item: Any) -> Asset | str:
        """The asset, or why its object cannot be used."""
        if not isinstance(item, dict):
            return "an asset entry is not an object"
        ident, size, name = item.get("id"), item.get("size"), item.get("name")
        if not isinstance(ident, int) or isinstance(ident, bool) or ident < 0:
            return "an asset has no numeric id"
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            return f"asset {ident} has no size"
        if size > MAX_ASSET_BYTES:
            return f"asset {ident} says it has {size} bytes, more than GitHub keeps (2 GiB)"
        digest = item.get("digest")
        found = _DIGEST.fullmatch(digest) if isinstance(digest, str) else None
        if digest is not None and found is None:
            return f"asset {ident} has a digest that is not sha256:<hex>"
        stamp = item.get("updated_at")
        return cls(
            ident,
            name if isinstance(name, str) else str(ident),
            size,
            found.group(1) if found else None,
            stamp if isinstance(stamp, str) else "",
        )


class Downloader:
    """Fetches storage URLs without credentials, bounded by each asset's size and by time."""

    def __init__(
        self,
        api_url: str,
        *,
        timeout_s: float = 30.0,
        grace_s: float = _GRACE_S,
        min_average_bps: int = _MIN_AVERAGE_BPS,
    ) -> None:
        self._api_scheme = urlsplit(api_url).scheme
        self._timeout = timeout_s
        self._grace_s = grace_s
        self._min_bps = min_average_bps
        self._stop = threading.Event()
        self.session = requests.Session()
        self.session.auth = lambda request: request  # never ~/.netrc credentials
        self.session.headers.pop("Authorization", None)
        self.bytes = 0

    def close(self) -> None:
        self.session.close()

    def stop(self) -> None:
        """Abandon the download under way at its next read, and refuse new ones."""
        self._stop.set()

    def deadline_s(self, size: int) -> float:
        """How long a download of ``size`` bytes may take in all."""
        return self._grace_s + size / self._min_bps

    def _checked(self, location: str) -> str:
        parts = urlsplit(location)
        if parts.scheme not in ("https", self._api_scheme) or not parts.hostname:
            raise GitHubAnswerInvalid(
                f"GitHub sent a release asset to {redact_url(location)}: not an HTTPS URL, refused"
            )
        return location

    def fetch(self, location: str, asset: Asset, folder: Path) -> str:
        """Download ``asset`` from ``location`` into ``folder``: the sha256 of its bytes."""
        url = self._checked(location)
        shown = redact_url(url)
        tmp = folder / f".incoming-{asset.id}-{os.getpid()}"
        digest = hashlib.sha256()
        if self._stop.is_set():
            raise DiscoveryStopped("stopped before asset download")
        try:
            with self.session.get(
                url,
                headers={"Accept": OCTET_STREAM},
                stream=True,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                if response.status_code != 200:
                    raise GitHubUnavailable(
                        f"the storage host {shown} answered HTTP {response.status_code} for "
                        f"asset {asset.name!r}"
                    )
                with tmp.open("wb") as out:
                    size = self._receive(response.raw, asset, shown, out, digest)
            self.bytes += size
            found = digest.hexdigest()
            if size != asset.size:
                raise AssetMismatch(
                    f"asset {asset.name!r} has {size} bytes where GitHub says {asset.size}: "
                    "not kept"
                )
            if asset.sha256 is not None and found != asset.sha256:
                raise AssetMismatch(
                    f"asset {asset.name!r} has digest sha256:{found} where GitHub says "
                    f"sha256:{asset.sha256}: not kept"
                )
            tmp.replace(folder / found)
            return found
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            raise GitHubUnavailable(
                f"cannot download asset {asset.name!r} from {shown}: {type(exc).__name__}"
            ) from None
        finally:
            tmp.unlink(missing_ok=True)

    def _receive(self, raw: Any, asset: Asset, shown: str, out: Any, digest: Any) -> int:
        """Copy the body into ``out`` as it arrives, bounded by the asset's size and deadline.
        The bytes are taken as the host sent them, with no content decoding: GitHub's digest
        is of the stored bytes."""
        ends = time.monotonic() + self.deadline_s(asset.size)
        size = 0
        while chunk := raw.read1(_READ, decode_content=False):
            if self._stop.is_set():
                raise DiscoveryStopped(f"stopped while downloading asset {asset.name!r}")
            size += len(chunk)
            if size > asset.size:
                raise AssetMismatch(
                    f"asset {asset.name!r} is larger than its size, {asset.size} bytes: not kept"
                )
            if time.monotonic() > ends:
                raise GitHubUnavailable(
                    f"asset {asset.name!r} from {shown} was not whole after "
                    f"{self.deadline_s(asset.size):.0f} s ({size} of {asset.size} bytes, under "
                    f"{self._min_bps // 1024} KiB/s): abandoned"
                )
            digest.update(chunk)
            out.write(chunk)
        return size
