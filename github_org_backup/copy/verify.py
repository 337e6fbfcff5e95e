"""Check a backup: every tag's manifests and blobs exist with the right size (and, deep, hash).

Every descriptor is checked against what is stored, wherever it appears: the work is shared
per (repository, digest, size), so two descriptors naming one digest with different sizes
are each judged on their own. Deep mode re-hashes each stored blob once per repository.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import structlog

from github_org_backup.errors import BackupError, lacks_access
from github_org_backup.model.oci import Descriptor
from github_org_backup.stores.protocol import Store

log = structlog.get_logger("github_org_backup.copy.verify")


@dataclass(frozen=True)
class Problem:
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


@dataclass
class VerifyResult:
    tags: int = 0
    manifests: int = 0
    blobs: int = 0
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class _Stored:
    """What a repository holds under a digest: its size, and (deep) what its bytes hash to."""

    size: int | None
    rehashed: tuple[str, int] | None = None
    error: str | None = None


# A problem below a tag: the path to it from the tag (" > sha256:abc..." per child), and what.
_Finding = tuple[str, str]


class Verifier:
    """Walks tags in one store. Each descriptor is checked once, and every tag that reaches a
    problem through it is named."""

    def __init__(self, store: Store, *, deep: bool = False, concurrency: int = 16) -> None:
        self._store = store
        self._deep = deep
        self._limit = asyncio.Semaphore(concurrency)
        self._checked: dict[tuple[str, str, str, int], asyncio.Task[list[_Finding]]] = {}
        self._stored: dict[tuple[str, str], asyncio.Task[_Stored]] = {}
        self.result = VerifyResult()
        self._no_access: BackupError | None = None  # the check could not run: raised at the end

    async def verify(self, tags: Iterable[tuple[str, str]]) -> VerifyResult:
        """Verify every (repository, tag); problems are collected, never raised."""
        found = await asyncio.gather(*(self._verify_tag(name, tag) for name, tag in tags))
        if self._no_access is not None:
            raise self._no_access  # refused or unreachable: not a problem of the backup's
        self.result.problems = sorted(
            {p for problems in found for p in problems}, key=lambda p: (p.where, p.what)
        )
        return self.result

    def _where(self, name: str, tag: str) -> str:
        """The tag as a user would name it: ``host/repo:tag``, ``oci:DIR:repo:tag``,
        or ``oci:DIR:tag`` for a layout's plain-tag ref."""
        registry = self._store.registry
        if registry.layout:
            return f"{registry}:{name}:{tag}" if name else f"{registry}:{tag}"
        return f"{registry}/{name}:{tag}"

    async def _verify_tag(self, name: str, tag: str) -> list[Problem]:
        where = self._where(name, tag)
        self.result.tags += 1
        try:
            async with self._limit:
                top = await self._store.resolve_manifest(name, tag)
        except BackupError as exc:
            if self._cannot_check(exc):
                return []
            return [Problem(where, f"cannot resolve the tag: {exc}")]
        if top is None:
            return [Problem(where, "tag missing")]
        findings = await self._once(name, top, "manifest")
        return [Problem(where + path, what) for path, what in findings]

    def _once(self, name: str, descriptor: Descriptor, kind: str) -> asyncio.Task[list[_Finding]]:
        key = (kind, name, descriptor.digest, descriptor.size)
        task = self._checked.get(key)
        if task is None:
            check = self._check_manifest if kind == "manifest" else self._check_blob
            task = asyncio.create_task(check(name, descriptor))
            self._checked[key] = task
        return task

    async def _check_manifest(self, name: str, descriptor: Descriptor) -> list[_Finding]:
        expected = descriptor if descriptor.size >= 0 else None
        try:
            async with self._limit:
                manifest = await self._store.get_manifest(name, descriptor.digest, expected)
        except BackupError as exc:
            if self._cannot_check(exc):
                return []
            return [("", f"manifest {descriptor.digest} missing or damaged: {exc}")]
        self.result.manifests += 1
        children = manifest.children()
        below = [self._once(name, child, "manifest") for child in children]
        below += [self._once(name, blob, "blob") for blob in manifest.blobs()]
        results = await asyncio.gather(*below)
        hops = [f" > {child.digest[:19]}" for child in children] + [""] * len(manifest.blobs())
        return [
            (hop + path, what)
            for hop, findings in zip(hops, results, strict=True)
            for path, what in findings
        ]

    async def _check_blob(self, name: str, blob: Descriptor) -> list[_Finding]:
        self.result.blobs += 1
        key = (name, blob.digest)
        if (stored_task := self._stored.get(key)) is None:
            stored_task = asyncio.create_task(self._inspect_blob(name, blob.digest))
            self._stored[key] = stored_task
        stored = await stored_task
        if stored.error is not None:
            return [("", f"blob {blob.digest} unreadable: {stored.error}")]
        if stored.size is None:
            return [("", f"blob {blob.digest} missing")]
        if stored.size >= 0 and stored.size != blob.size:
            return [("", f"blob {blob.digest} is {stored.size} bytes, expected {blob.size}")]
        if stored.rehashed is not None:
            actual, size = stored.rehashed
            if size != blob.size or actual != blob.digest:
                return [("", f"blob {blob.digest} re-hashes to {actual} ({size} bytes)")]
        return []

    async def _inspect_blob(self, name: str, digest: str) -> _Stored:
        """Once per (repository, digest): the stored size and, deep, a re-hash of the bytes."""
        try:
            async with self._limit:
                size = await self._store.blob_size(name, digest)
                if size is None or not self._deep:
                    return _Stored(size)
                return _Stored(size, await self._rehash(name, digest))
        except BackupError as exc:
            if self._cannot_check(exc):
                return _Stored(-1)  # not judged: the run ends with the access error
            return _Stored(None, error=str(exc))

    def _cannot_check(self, exc: BackupError) -> bool:
        """Credentials refused or the registry gone: remembered, to end the check (exit 2)."""
        if not lacks_access(exc):
            return False
        self._no_access = self._no_access or exc
        return True

    async def _rehash(self, name: str, digest: str) -> tuple[str, int]:
        hashed = hashlib.new(digest.partition(":")[0])
        size = 0
        async with self._store.read_blob(name, digest) as chunks:
            async for chunk in chunks:
                hashed.update(chunk)
                size += len(chunk)
        return f"{hashed.name}:{hashed.hexdigest()}", size
