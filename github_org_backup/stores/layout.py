"""An OCI image-layout directory as a store: ``oci-layout``, ``index.json``, ``blobs/<alg>/<hex>``.

One layout holds many repositories: each tag is an ``index.json`` entry whose
``org.opencontainers.image.ref.name`` is ``<repository>:<tag>`` (``skopeo inspect
oci:DIR:acme/app:1.2.3`` reads it). Layouts written by skopeo, umoci, regclient and
go-containerregistry name each ref with a plain tag (``latest``) instead: those refs are the
tags of the layout's one unnamed repository, whose name is ``""`` (``oci:DIR::latest``; in
``oci:DIR:latest`` the name is taken as that plain ref when no ``latest:latest`` exists).
Blobs are shared by digest, so a "mount" is free. Every write is atomic (temporary file,
fsync, rename), so a crash never corrupts the layout; file names are built only from
validated digests. Nothing read from the layout is trusted: a manifest that is not JSON, or
whose size or digest disagrees with its descriptor, is an error for the image that names it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Any

from github_org_backup.base import jsonio
from github_org_backup.base.files import atomic_write, locked_directory
from github_org_backup.errors import (
    ContentError,
    DigestMismatch,
    InvalidManifest,
    InvalidReference,
    LayoutWriteError,
    NotFound,
    ResumeRefused,
    UsageError,
)
from github_org_backup.model.oci import (
    MAX_MANIFEST_BYTES,
    OCI_INDEX,
    Descriptor,
    Manifest,
    digest_of,
    parse_manifest,
    verify_content,
)
from github_org_backup.model.reference import (
    Registry,
    validate_digest,
    validate_repository,
    validate_tag,
)
from github_org_backup.stores.disk import write_atomically, writing
from github_org_backup.stores.protocol import READ_CHUNK, UploadSession

REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT_VERSION = {"imageLayoutVersion": "1.0.0"}


MAX_INDEX_BYTES = 64 * 2**20  # tens of thousands of refs


def _open_regular(path: Path) -> int:
    """A descriptor for ``path``, which must be a regular file: a symlink to a device or a
    FIFO in a layout (``/dev/zero`` as a blob) is a damaged layout, never read."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO does not block the open
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ContentError(f"{path} is not a regular file: the layout is damaged, repair it")
    return fd


def _regular_size(path: Path) -> int:
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise ContentError(f"{path} is not a regular file: the layout is damaged, repair it")
    return info.st_size


def read_regular(path: Path, limit: int) -> bytes:
    """A regular file's bytes, at most ``limit``: more is a damaged layout."""
    with os.fdopen(_open_regular(path), "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise InvalidManifest(f"{path} is over {limit} bytes: the layout is damaged")
    return data


def _declared_media_type(raw: bytes) -> str | None:
    """The manifest's own top-level mediaType, or None if it has none or is not a JSON object."""
    try:
        document = jsonio.loads(raw)
    except ValueError:  # also UnicodeDecodeError: a gzip or other binary blob
        return None
    declared = document.get("mediaType") if isinstance(document, dict) else None
    return declared if isinstance(declared, str) and declared else None


def split_ref_name(ref: str) -> tuple[str, str] | None:
    """(repository, tag) of an ``index.json`` ref name; ``""`` is the repository of a plain tag.

    ``acme/app:1.2.3`` is this tool's form; ``latest`` is how skopeo, umoci, regclient and
    go-containerregistry name refs. Anything else (not a tag, not repository:tag) is None.
    """
    name, colon, tag = ref.rpartition(":")
    try:
        if colon:
            return validate_repository(name), validate_tag(tag)
        return "", validate_tag(ref)
    except InvalidReference:
        return None


def _ref_of(entry: Any) -> str | None:
    annotations = entry.get("annotations") if isinstance(entry, dict) else None
    ref = annotations.get(REF_NAME) if isinstance(annotations, dict) else None
    return ref if isinstance(ref, str) else None


def _apply(index: dict[str, Any], ref_name: str, entry: dict[str, Any] | None) -> None:
    """Drop every entry named ``ref_name`` from an index.json document; add ``entry``."""
    index["manifests"] = [e for e in index["manifests"] if _ref_of(e) != ref_name]
    if entry is not None:
        index["manifests"].append(entry)


class LayoutStore:
    """A Store over an OCI layout directory (created on first write)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.root = Path(registry.path)
        self._index_lock = asyncio.Lock()
        self._index: dict[str, Any] | None = None
        # Ref changes not yet in index.json: ref name -> its new entry, or None to delete it.
        self._pending: dict[str, dict[str, Any] | None] = {}
        # Ref changes a failed commit of another image's took with it: ref name -> the error.
        self._unwritten: dict[str, str] = {}

    # Paths

    def _blob_path(self, digest: str) -> Path:
        algorithm, _, hexpart = validate_digest(digest).partition(":")
        return self.root / "blobs" / algorithm / hexpart

    def _ensure_layout(self) -> None:
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        marker = self.root / "oci-layout"
        if not marker.exists():
            atomic_write(marker, json.dumps(LAYOUT_VERSION).encode())
            return
        try:
            version = jsonio.loads(read_regular(marker, 4096)).get("imageLayoutVersion")
        except (ValueError, AttributeError):
            version = None
        if version != "1.0.0":
            raise UsageError(f"{self.root} is not an OCI image layout version 1.0.0")

    # index.json

    def _load_index(self) -> dict[str, Any]:
        if self._index is None:
            path = self.root / "index.json"
            if path.exists():
                self._index = self._read_index(path)
            else:
                self._index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
            for ref_name, entry in self._pending.items():  # read again after a failed commit
                _apply(self._index, ref_name, entry)
        return self._index

    @staticmethod
    def _read_index(path: Path) -> dict[str, Any]:
        try:
            index = jsonio.loads(read_regular(path, MAX_INDEX_BYTES))
        except ValueError as exc:
            raise InvalidManifest(
                f"{path} is not valid JSON ({exc}): repair or remove it"
            ) from None
        if not isinstance(index, dict) or not isinstance(index.get("manifests", []), list):
            raise InvalidManifest(f"{path} is not an OCI image index: repair or remove it")
        index.setdefault("manifests", [])
        return index

    def _refs(self) -> list[tuple[str, dict[str, Any]]]:
        """(ref name, entry) for every ``index.json`` entry that carries a ref name."""
        return [
            (ref, entry) for entry in self._load_index()["manifests"] if (ref := _ref_of(entry))
        ]

    @staticmethod
    def _ref_name(name: str, tag: str) -> str:
        if not name:
            return validate_tag(tag)  # the layout's unnamed repository: a plain tag
        return f"{validate_repository(name)}:{validate_tag(tag)}"

    def _entry(self, name: str, tag: str) -> dict[str, Any] | None:
        refs = dict(self._refs())
        entry = refs.get(self._ref_name(name, tag))
        if entry is None and name and tag == "latest":
            # ``oci:DIR:NAME`` as skopeo means it: NAME is a plain ref of this layout.
            entry = refs.get(name)
        return dict(entry) if entry is not None else None

    def _set_ref(self, ref_name: str, entry: dict[str, Any] | None) -> None:
        """Point ``ref_name`` at ``entry`` (None deletes it) here, and in index.json at the
        next commit."""
        _apply(self._load_index(), ref_name, entry)
        self._pending[ref_name] = entry

    async def _commit_index(self, ref_name: str) -> None:
        """Group commit: whoever takes the lock writes every change made so far; if that
        write fails, every change it held fails (``ref_name`` at once, the others' later).

        Other processes may write the same layout (shards, a copy beside the CronJob): under
        a lock on the directory, index.json is read again and only this process's ref
        changes are applied to it, so no writer loses another's refs.
        """
        async with self._index_lock:
            if (refused := self._unwritten.pop(ref_name, None)) is not None:
                raise LayoutWriteError(refused)
            if not self._pending:
                return  # an earlier commit wrote them
            pending, self._pending = self._pending, {}
            try:
                merged = await asyncio.to_thread(self._merge_into_index, pending)
            except LayoutWriteError as exc:
                self._index = None  # as index.json is: without any of ``pending``
                self._unwritten |= {other: str(exc) for other in pending if other != ref_name}
                raise
            for ref_name, entry in self._pending.items():  # changed while we wrote
                _apply(merged, ref_name, entry)
            self._index = merged

    def _merge_into_index(self, pending: dict[str, dict[str, Any] | None]) -> dict[str, Any]:
        with locked_directory(self.root):
            path = self.root / "index.json"
            if path.exists():
                index = self._read_index(path)
            else:
                index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
            for ref_name, entry in pending.items():
                _apply(index, ref_name, entry)
            with writing(path):
                atomic_write(path, json.dumps(index, indent=2).encode())
        return index

    # Store: manifests

    async def resolve_manifest(self, name: str, identifier: str) -> Descriptor | None:
        if identifier.startswith(("sha256:", "sha512:")):
            try:
                size = _regular_size(self._blob_path(identifier))
            except FileNotFoundError:
                return None
            media_type = ""
            if size <= MAX_MANIFEST_BYTES:  # a layer named as a manifest is not read whole
                path = self._blob_path(identifier)
                raw = await asyncio.to_thread(read_regular, path, MAX_MANIFEST_BYTES)
                media_type = _declared_media_type(raw) or ""
            return Descriptor(media_type, identifier, size)
        entry = self._entry(name, identifier)
        return Descriptor.from_json(entry) if entry else None

    async def get_manifest(
        self, name: str, identifier: str, expected: Descriptor | None = None
    ) -> Manifest:
        """The manifest's bytes, checked against ``expected`` (or its index entry) for size and
        digest; a manifest without its own mediaType takes the one its descriptor names."""
        found = expected or await self.resolve_manifest(name, identifier)
        if found is None:
            raise NotFound(f"manifest {self._where(name, identifier)} not found")
        where = self._where(name, found.digest)
        path = self._blob_path(found.digest)
        try:
            if (size := _regular_size(path)) > MAX_MANIFEST_BYTES:
                raise InvalidManifest(
                    f"{where} is {size} bytes, over the 4 MiB limit: it is not a manifest"
                )
            raw = await asyncio.to_thread(read_regular, path, MAX_MANIFEST_BYTES)
        except FileNotFoundError:
            raise NotFound(f"manifest blob {found.digest} missing from {self.root}") from None
        if digest_of(raw, found.digest.partition(":")[0]) != found.digest:
            raise DigestMismatch(f"manifest blob {found.digest} in {self.root} is corrupt")
        media_type = _declared_media_type(raw) or found.media_type
        try:
            return parse_manifest(raw, media_type, Descriptor(media_type, found.digest, found.size))
        except ContentError as exc:
            raise type(exc)(f"{where}: {exc} (the layout is damaged: repair it)") from None

    def _where(self, name: str, identifier: str) -> str:
        """How a user names this image: ``oci:DIR:repo:tag``, ``oci:DIR:tag``, ``...@digest``."""
        separator = "@" if identifier.startswith(("sha256:", "sha512:")) else ":"
        return f"{self.registry}{':' + name if name else ''}{separator}{identifier}"

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
        self._set_ref(ref_name, entry)
        await self._commit_index(ref_name)

    async def list_referrers(self, name: str, digest: str) -> list[Descriptor] | None:
        return None  # a layout has no referrers API; fallback tags travel as tags

    def _names(self) -> list[tuple[str, str]]:
        """(repository, tag) of every ref; plain tags belong to the unnamed repository ``""``."""
        return [split for ref, _ in self._refs() if (split := split_ref_name(ref)) is not None]

    async def list_tags(self, name: str) -> list[str]:
        return sorted({tag for repository, tag in self._names() if repository == name})

    async def list_repositories(self) -> list[str]:
        return sorted({repository for repository, _ in self._names()})

    async def delete_tag(self, name: str, tag: str) -> None:
        ref_name = self._ref_name(name, tag)
        self._set_ref(ref_name, None)
        await self._commit_index(ref_name)

    # Store: blobs

    async def blob_size(self, name: str, digest: str) -> int | None:
        try:
            return _regular_size(self._blob_path(digest))
        except FileNotFoundError:
            return None

    async def mount_blob(self, name: str, digest: str, from_name: str) -> UploadSession | None:
        """Blobs are shared by digest: present is mounted; else an upload (that needs nothing)."""
        return None if await self.blob_size(name, digest) is not None else UploadSession(name)

    async def start_upload(self, name: str) -> UploadSession:
        return UploadSession(name)  # a layout's upload needs no session

    async def cancel_upload(self, session: UploadSession) -> None:
        pass

    @contextlib.asynccontextmanager
    async def read_blob(
        self, name: str, digest: str, offset: int = 0
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        path = self._blob_path(digest)
        try:
            handle = os.fdopen(_open_regular(path), "rb")
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
        self,
        name: str,
        blob: Descriptor,
        chunks: AsyncIterable[bytes],
        session: UploadSession | None,
    ) -> None:
        """Write to a temporary file and rename into place only once complete and verified.

        A write the file system refuses (full, quota, read-only) is a LayoutWriteError naming
        the blob's path; the temporary file goes, so no partial blob stays."""
        path = self._blob_path(blob.digest)
        if path.exists():
            async for _ in chunks:  # already there: drain the verified stream
                pass
            return
        with writing(path):
            await asyncio.to_thread(self._ensure_layout)
        await write_atomically(path, chunks, blob)

    def _write_blob_bytes(self, digest: str, data: bytes) -> None:
        path = self._blob_path(digest)
        if path.exists():
            return
        verify_content(data, Descriptor("", digest, len(data)))
        with writing(path):
            self._ensure_layout()
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, data)
