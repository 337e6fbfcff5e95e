"""An OCI image-layout directory as a store: ``oci-layout``, ``index.json``, ``blobs/<alg>/<hex>``.

One layout holds many repositories: each tag is an ``index.json`` entry whose
``org.opencontainers.image.ref.name`` is ``<repository>:<tag>`` (``skopeo inspect
oci:DIR:acme/app:1.2.3`` reads it). Blobs are shared by digest, so a "mount" is free.
Every write is atomic (temporary file, fsync, rename), so a crash never corrupts the layout;
file names are built only from validated digests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Any

from backup.errors import NotFound, ResumeRefused, SizeMismatch, UsageError
from backup.oci import OCI_INDEX, Descriptor, Manifest, digest_of, parse_manifest, verify_content
from backup.reference import Registry, validate_digest, validate_repository, validate_tag
from backup.retry import RetryPolicy
from backup.store import READ_CHUNK

REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT_VERSION = {"imageLayoutVersion": "1.0.0"}


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_directory(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class LayoutStore:
    """A Store over an OCI layout directory (created on first write)."""

    def __init__(self, registry: Registry, policy: RetryPolicy | None = None) -> None:
        self.registry = registry
        self.policy = policy or RetryPolicy()
        self.root = Path(registry.host)
        self._index_lock = asyncio.Lock()
        self._index: dict[str, Any] | None = None
        self._dirty = False

    # Paths

    def _blob_path(self, digest: str) -> Path:
        algorithm, _, hexpart = validate_digest(digest).partition(":")
        return self.root / "blobs" / algorithm / hexpart

    def _ensure_layout(self) -> None:
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        marker = self.root / "oci-layout"
        if not marker.exists():
            _atomic_write(marker, json.dumps(LAYOUT_VERSION).encode())
        elif json.loads(marker.read_text()).get("imageLayoutVersion") != "1.0.0":
            raise UsageError(f"{self.root} is not an OCI image layout version 1.0.0")

    # index.json

    def _load_index(self) -> dict[str, Any]:
        if self._index is None:
            path = self.root / "index.json"
            if path.exists():
                self._index = json.loads(path.read_bytes())
            else:
                self._index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        return self._index

    @staticmethod
    def _ref_name(name: str, tag: str) -> str:
        return f"{validate_repository(name)}:{validate_tag(tag)}"

    def _entry(self, name: str, tag: str) -> dict[str, Any] | None:
        wanted = self._ref_name(name, tag)
        for entry in self._load_index()["manifests"]:
            if (entry.get("annotations") or {}).get(REF_NAME) == wanted:
                return dict(entry)
        return None

    async def _commit_index(self) -> None:
        """Group commit: whoever takes the lock writes every change made so far."""
        self._dirty = True
        async with self._index_lock:
            if not self._dirty:
                return
            self._dirty = False
            data = json.dumps(self._load_index(), indent=2).encode()
            await asyncio.to_thread(_atomic_write, self.root / "index.json", data)

    # Store: manifests

    async def resolve_manifest(self, name: str, identifier: str) -> Descriptor | None:
        if identifier.startswith(("sha256:", "sha512:")):
            path = self._blob_path(identifier)
            if not path.exists():
                return None
            media_type = json.loads(path.read_bytes()).get("mediaType", "")
            return Descriptor(str(media_type), identifier, path.stat().st_size)
        entry = self._entry(name, identifier)
        return Descriptor.from_json(entry) if entry else None

    async def get_manifest(
        self, name: str, identifier: str, expected: Descriptor | None = None
    ) -> Manifest:
        found = expected or await self.resolve_manifest(name, identifier)
        if found is None:
            raise NotFound(f"manifest {self.registry}:{name}:{identifier} not found")
        try:
            raw = self._blob_path(found.digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"manifest blob {found.digest} missing from {self.root}") from None
        if digest_of(raw, found.digest.partition(":")[0]) != found.digest:
            raise NotFound(f"manifest blob {found.digest} in {self.root} is corrupt")
        media_type = json.loads(raw).get("mediaType") or found.media_type
        return parse_manifest(raw, media_type, Descriptor(media_type, found.digest, len(raw)))

    async def put_manifest(self, name: str, identifier: str, manifest: Manifest) -> None:
        await asyncio.to_thread(self._write_blob_bytes, manifest.digest, manifest.raw)
        if identifier.startswith(("sha256:", "sha512:")):
            return  # a child, reachable from its index
        ref_name = self._ref_name(name, identifier)
        entry = {
            "mediaType": manifest.media_type,
            "digest": manifest.digest,
            "size": manifest.size,
            "annotations": {REF_NAME: ref_name},
        }
        index = self._load_index()
        index["manifests"] = [
            e for e in index["manifests"] if (e.get("annotations") or {}).get(REF_NAME) != ref_name
        ] + [entry]
        await self._commit_index()

    async def list_referrers(self, name: str, digest: str) -> list[Descriptor] | None:
        return None  # a layout has no referrers API; fallback tags travel as tags

    async def list_tags(self, name: str) -> list[str]:
        prefix = f"{name}:"
        return sorted(
            ref[len(prefix) :]
            for e in self._load_index()["manifests"]
            if (ref := (e.get("annotations") or {}).get(REF_NAME, "")).startswith(prefix)
            and "/" not in ref[len(prefix) :]
        )

    async def list_repositories(self) -> list[str]:
        names = {
            ref.rpartition(":")[0]
            for e in self._load_index()["manifests"]
            if ":" in (ref := (e.get("annotations") or {}).get(REF_NAME, ""))
        }
        return sorted(names)

    async def delete_tag(self, name: str, tag: str) -> None:
        ref_name = self._ref_name(name, tag)
        index = self._load_index()
        index["manifests"] = [
            e for e in index["manifests"] if (e.get("annotations") or {}).get(REF_NAME) != ref_name
        ]
        await self._commit_index()

    # Store: blobs

    async def blob_size(self, name: str, digest: str) -> int | None:
        try:
            return self._blob_path(digest).stat().st_size
        except FileNotFoundError:
            return None

    async def mount_blob(self, name: str, digest: str, from_name: str) -> object | None:
        return None if await self.blob_size(name, digest) is not None else "upload"

    @contextlib.asynccontextmanager
    async def read_blob(
        self, name: str, digest: str, offset: int = 0
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        path = self._blob_path(digest)
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} missing from {self.root}") from None
        with handle:
            if offset and handle.seek(offset) != offset:
                raise ResumeRefused(f"cannot seek {digest} to {offset}")

            async def chunks() -> AsyncIterator[bytes]:
                while data := await asyncio.to_thread(handle.read, READ_CHUNK):
                    yield data

            yield chunks()

    async def write_blob(
        self, name: str, blob: Descriptor, chunks: AsyncIterable[bytes], session: object | None
    ) -> None:
        """Write to a temporary file and rename into place only once complete and verified."""
        path = self._blob_path(blob.digest)
        if path.exists():
            async for _ in chunks:  # already there: drain the verified stream
                pass
            return
        await asyncio.to_thread(self._ensure_layout)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                async for data in chunks:
                    await asyncio.to_thread(handle.write, data)
                await asyncio.to_thread(handle.flush)
                await asyncio.to_thread(os.fsync, handle.fileno())
            if os.path.getsize(tmp) != blob.size:
                raise SizeMismatch(f"blob {blob.digest} was cut short")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _write_blob_bytes(self, digest: str, data: bytes) -> None:
        path = self._blob_path(digest)
        if path.exists():
            return
        verify_content(data, Descriptor("", digest, len(data)))
        self._ensure_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, data)
