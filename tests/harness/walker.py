"""An independent walker of a registry: what a tag resolves to, and whether all of it is there."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


@dataclass
class WalkResult:
    digest: str | None
    problems: list[str] = field(default_factory=list)
    manifests: int = 0
    blobs: int = 0


class Walker:
    def __init__(self, base_url: str, authorize: Callable[[str], str | None]) -> None:
        self.base_url = base_url
        self.authorize = authorize

    def _open(self, method: str, repository: str, path: str) -> tuple[int, bytes, dict[str, str]]:
        headers = {"Accept": ACCEPT}
        if (auth := self.authorize(repository)) is not None:
            headers["Authorization"] = auth
        request = urllib.request.Request(
            f"{self.base_url}/v2/{repository}/{path}", method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as error:
            return error.code, b"", {}

    def manifest(self, repository: str, reference: str) -> bytes | None:
        status, body, _ = self._open("GET", repository, f"manifests/{reference}")
        return body if status == 200 else None

    def tags(self, repository: str) -> list[str]:
        status, body, _ = self._open("GET", repository, "tags/list")
        return sorted(json.loads(body).get("tags") or []) if status == 200 else []

    def image_tags(self, repository: str) -> list[str]:
        """The tags, without the one history tag github-org-backup keeps in each repository."""
        return [t for t in self.tags(repository) if t != "github-org-backup.history"]

    def walk(self, repository: str, reference: str) -> WalkResult:
        """Resolve ``reference`` and check every child manifest and blob below it."""
        raw = self.manifest(repository, reference)
        if raw is None:
            return WalkResult(None, [f"{repository}:{reference} missing"])
        result = WalkResult("sha256:" + hashlib.sha256(raw).hexdigest())
        self._check(repository, raw, result)
        return result

    def _check(self, repository: str, raw: bytes, result: WalkResult) -> None:
        result.manifests += 1
        document = json.loads(raw)
        for child in document.get("manifests", []):
            body = self.manifest(repository, child["digest"])
            if (
                body is None
                or len(body) != child["size"]
                or ("sha256:" + hashlib.sha256(body).hexdigest() != child["digest"])
            ):
                result.problems.append(f"{repository}@{child['digest']} child missing or wrong")
                continue
            self._check(repository, body, result)
        for blob in [document.get("config"), *document.get("layers", [])]:
            if not blob:
                continue
            status, _, headers = self._open("HEAD", repository, f"blobs/{blob['digest']}")
            result.blobs += 1
            if status != 200 or int(headers.get("Content-Length", -1)) != blob["size"]:
                result.problems.append(f"{repository}@{blob['digest']} blob missing or wrong size")
