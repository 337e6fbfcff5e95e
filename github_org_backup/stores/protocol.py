"""The one interface the engine copies through: a registry over HTTP, or an OCI layout directory.

Names are repository paths; identifiers are tags or digests. Both implementations keep
manifests byte-exact and write a tag only with ``put_manifest``, after its content.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from github_org_backup.model.oci import Descriptor, Manifest
from github_org_backup.model.reference import Registry

READ_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class UploadSession:
    """An upload opened in repository ``name`` (by ``start_upload``, or by a mount that did
    not mount); ``write_blob`` sends the bytes there. ``location`` is what the store needs to
    go on with it (a registry's session URL; a layout needs nothing)."""

    name: str
    location: str = ""


class Store(Protocol):
    registry: Registry

    async def resolve_manifest(self, name: str, identifier: str) -> Descriptor | None:
        """The descriptor a tag or digest resolves to, or None if absent."""

    async def get_manifest(
        self, name: str, identifier: str, expected: Descriptor | None = None
    ) -> Manifest:
        """The manifest's exact bytes, checked against ``expected`` or a digest identifier."""

    async def put_manifest(self, name: str, identifier: str, manifest: Manifest) -> None:
        """Store a manifest under a tag or its digest; everything it references must be present."""

    async def blob_size(self, name: str, digest: str) -> int | None:
        """The size of a blob present in ``name``, or None."""

    async def mount_blob(self, name: str, digest: str, from_name: str) -> UploadSession | None:
        """Make a blob of ``from_name`` visible in ``name``. None if done; else an upload session
        to hand to ``write_blob``."""

    async def start_upload(self, name: str) -> UploadSession:
        """Open an upload session in ``name`` for ``write_blob``."""

    async def cancel_upload(self, session: UploadSession) -> None:
        """Best effort: end a session that will never be written to."""

    def read_blob(
        self, name: str, digest: str, offset: int = 0
    ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """The blob's bytes from ``offset``; raises ResumeRefused if it cannot start there."""

    async def write_blob(
        self,
        name: str,
        blob: Descriptor,
        chunks: AsyncIterable[bytes],
        session: UploadSession | None,
    ) -> None:
        """Store a blob from a stream; the caller verifies the bytes as they pass."""

    async def list_referrers(self, name: str, digest: str) -> list[Descriptor] | None:
        """Manifests whose subject is ``digest`` (OCI 1.1), or None without a referrers API."""

    async def list_tags(self, name: str) -> list[str]:
        """Every tag of a repository (empty if it does not exist)."""

    async def list_repositories(self) -> list[str]:
        """Every repository name the store can enumerate."""

    async def delete_tag(self, name: str, tag: str) -> None:
        """Remove a tag (never a blob)."""
