"""Release assets: their bytes as GitHub serves them, checked, kept once by digest.

The API's asset URL, asked with ``Accept: application/octet-stream``, answers 302 to a
storage host on another domain with a signed query. That request carries the token and goes
only to the API; the storage host gets a request of its own with no credentials at all (S3-style
storage refuses one that carries ``Authorization``). The bytes stream into a temporary file
beside the store's assets, hashed as they come, and are kept as ``sha256/HEX`` only if their
length is the asset's ``size`` and their digest its ``digest``; otherwise the file is removed
and the asset fails alone. The signed query never reaches a log line or an error.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from github_org_backup.base.redact import redact_url
from github_org_backup.errors import AssetMismatch, GitHubAnswerInvalid, GitHubUnavailable

OCTET_STREAM = "application/octet-stream"
_CHUNK = 1024 * 1024
_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
# GitHub keeps release assets under 2 GiB each: a larger size is not GitHub's to give.
MAX_ASSET_BYTES = 2 * 1024**3
# A download slower than this on average, after its first minute, is abandoned.
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

    def __init__(self, api_url: str, *, timeout_s: float = 30.0) -> None:
        self._api_scheme = urlsplit(api_url).scheme
        self._timeout = timeout_s
        self.session = requests.Session()
        self.session.auth = lambda request: request  # never ~/.netrc credentials
        self.session.headers.pop("Authorization", None)
        self.bytes = 0

    def close(self) -> None:
        self.session.close()

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
        size = 0
        started = time.monotonic()
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
                    for chunk in response.iter_content(_CHUNK):
                        size += len(chunk)
                        if size > asset.size:
                            raise AssetMismatch(
                                f"asset {asset.name!r} is larger than its size, {asset.size} "
                                "bytes: not kept"
                            )
                        elapsed = time.monotonic() - started
                        if elapsed > 60 and size / elapsed < _MIN_AVERAGE_BPS:
                            raise GitHubUnavailable(
                                f"asset {asset.name!r} from {shown} arrived at under "
                                f"{_MIN_AVERAGE_BPS // 1024} KiB/s: abandoned"
                            )
                        digest.update(chunk)
                        out.write(chunk)
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
        except requests.RequestException as exc:
            raise GitHubUnavailable(
                f"cannot download asset {asset.name!r} from {shown}: {type(exc).__name__}"
            ) from None
        finally:
            tmp.unlink(missing_ok=True)
