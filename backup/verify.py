"""Check a backup: every tag's manifests and blobs exist with the right size (and, deep, hash)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import structlog

from backup.errors import BackupError
from backup.oci import Descriptor
from backup.store import Store

log = structlog.get_logger("backup.verify")


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


class Verifier:
    """Walks tags in one store. Shared children and blobs are checked once per repository."""

    def __init__(self, store: Store, *, deep: bool = False, concurrency: int = 16) -> None:
        self._store = store
        self._deep = deep
        self._limit = asyncio.Semaphore(concurrency)
        self._checked: dict[tuple[str, str], asyncio.Task[list[Problem]]] = {}
        self.result = VerifyResult()

    async def verify(self, tags: Iterable[tuple[str, str]]) -> VerifyResult:
        """Verify every (repository, tag); problems are collected, never raised."""
        found = await asyncio.gather(*(self._verify_tag(name, tag) for name, tag in tags))
        self.result.problems = sorted(
            {p for problems in found for p in problems}, key=lambda p: (p.where, p.what)
        )
        return self.result

    async def _verify_tag(self, name: str, tag: str) -> list[Problem]:
        where = f"{self._store.registry}/{name}:{tag}"
        self.result.tags += 1
        try:
            async with self._limit:
                top = await self._store.resolve_manifest(name, tag)
        except BackupError as exc:
            return [Problem(where, f"cannot resolve the tag: {exc}")]
        if top is None:
            return [Problem(where, "tag missing")]
        return await self._manifest(name, top, where)

    def _once(
        self, name: str, descriptor: Descriptor, kind: str, where: str
    ) -> asyncio.Task[list[Problem]]:
        key = (name, descriptor.digest)
        task = self._checked.get(key)
        if task is None:
            check = self._check_manifest if kind == "manifest" else self._check_blob
            task = asyncio.create_task(check(name, descriptor, where))
            self._checked[key] = task
        return task

    async def _manifest(self, name: str, descriptor: Descriptor, where: str) -> list[Problem]:
        return await self._once(name, descriptor, "manifest", where)

    async def _check_manifest(self, name: str, descriptor: Descriptor, where: str) -> list[Problem]:
        expected = descriptor if descriptor.size >= 0 else None
        try:
            async with self._limit:
                manifest = await self._store.get_manifest(name, descriptor.digest, expected)
        except BackupError as exc:
            return [Problem(where, f"manifest {descriptor.digest} missing or damaged: {exc}")]
        self.result.manifests += 1
        below = [
            self._once(name, child, "manifest", f"{where} > {child.digest[:19]}")
            for child in manifest.children()
        ]
        below += [self._once(name, blob, "blob", where) for blob in manifest.blobs()]
        results = await asyncio.gather(*below)
        return [p for problems in results for p in problems]

    async def _check_blob(self, name: str, blob: Descriptor, where: str) -> list[Problem]:
        self.result.blobs += 1
        try:
            async with self._limit:
                size = await self._store.blob_size(name, blob.digest)
                if size is None:
                    return [Problem(where, f"blob {blob.digest} missing")]
                if size >= 0 and size != blob.size:
                    return [
                        Problem(where, f"blob {blob.digest} is {size} bytes, expected {blob.size}")
                    ]
                if self._deep:
                    return await self._rehash(name, blob, where)
        except BackupError as exc:
            return [Problem(where, f"blob {blob.digest} unreadable: {exc}")]
        return []

    async def _rehash(self, name: str, blob: Descriptor, where: str) -> list[Problem]:
        digest = hashlib.new(blob.digest.partition(":")[0])
        size = 0
        async with self._store.read_blob(name, blob.digest) as chunks:
            async for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
        actual = f"{digest.name}:{digest.hexdigest()}"
        if size != blob.size or actual != blob.digest:
            return [Problem(where, f"blob {blob.digest} re-hashes to {actual} ({size} bytes)")]
        return []
