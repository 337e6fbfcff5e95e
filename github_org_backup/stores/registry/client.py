"""The distribution-spec steps against one registry, named after them.

Every repository name, tag and digest reaching a URL here was validated by model.reference
when the Reference was built. Auth, retries, redirects and the HTTP client's errors are the
transport's (``transport.py``); reading answers is ``answers.py``'s; blob uploads are
``uploads.py``'s; the paginated lists (tags, referrers, the catalog) ``listings.py``'s.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, AsyncIterator

import aiohttp
import structlog
import yarl

from github_org_backup.base.limits import Limits
from github_org_backup.base.redact import redact_url
from github_org_backup.base.retry import RetryPolicy, retrying
from github_org_backup.errors import (
    ConnectionBroken,
    ContentError,
    DigestMismatch,
    InvalidManifest,
    NotFound,
    ResumeRefused,
    RetryLater,
    SizeMismatch,
    TransientError,
)
from github_org_backup.model.oci import (
    MANIFEST_ACCEPT,
    MANIFEST_MEDIA_TYPES,
    MAX_MANIFEST_BYTES,
    SCHEMA1_MEDIA_TYPES,
    SCHEMA1_UNSUPPORTED,
    Descriptor,
    Manifest,
    digest_of,
    is_schema1,
    parse_manifest,
)
from github_org_backup.model.reference import Registry, validate_digest
from github_org_backup.stores.protocol import READ_CHUNK, UploadSession
from github_org_backup.stores.registry.answers import (
    chunks,
    error_body,
    expect,
    read_capped,
    resumed_at,
)
from github_org_backup.stores.registry.auth import repository_scope
from github_org_backup.stores.registry.credentials import CredentialSource
from github_org_backup.stores.registry.listings import Listings, pull
from github_org_backup.stores.registry.origins import Trust
from github_org_backup.stores.registry.transport import Transport
from github_org_backup.stores.registry.uploads import Uploads, push

log = structlog.get_logger("github_org_backup.stores.registry")

_CDN_RETRIES = 2
# A manifest cut short or altered on the way is fetched again.
_REFETCHABLE: tuple[type[BaseException], ...] = (DigestMismatch, SizeMismatch, ConnectionBroken)


def ref(name: str, identifier: str) -> str:
    """``name@sha256:…`` for a digest, ``name:tag`` for a tag, as docker and skopeo write them."""
    separator = "@" if ":" in identifier else ":"
    return f"{name}{separator}{identifier}"


class _RedirectExpired(RetryLater):
    """A signed CDN URL that expired answered 403: ask the registry for a fresh one."""


class RegistryClient:
    """Talks to one registry. Shares the run's aiohttp session; one instance per host."""

    def __init__(
        self,
        registry: Registry,
        session: aiohttp.ClientSession,
        credentials: CredentialSource,
        policy: RetryPolicy | None = None,
        chunk_size: int | None = None,
        max_request_rate: float | None = None,
        limits: Limits | None = None,
        trust: Trust | None = None,
    ) -> None:
        self.registry = registry
        self.policy = policy or RetryPolicy()
        self.limits = limits or Limits()
        self._transport = Transport(
            registry, session, credentials, self.policy, max_request_rate, trust or Trust()
        )
        self._uploads = Uploads(self._transport, chunk_size)
        self._listings = Listings(self._transport, self.limits)

    @property
    def requests(self) -> int:
        """HTTP requests sent so far, redirects and retries included."""
        return self._transport.requests

    @property
    def chunk_size(self) -> int | None:
        return self._uploads.chunk_size

    def _url(self, name: str, kind: str, identifier: str) -> yarl.URL:
        return yarl.URL(f"{self.registry.base_url}/v2/{name}/{kind}/{identifier}", encoded=True)

    async def _expect(
        self, resp: aiohttp.ClientResponse, ok: tuple[int, ...], what: str, operation: str
    ) -> None:
        await expect(self.registry, resp, ok, what, operation=operation)

    # Manifests

    async def resolve_manifest(self, name: str, identifier: str) -> Descriptor | None:
        """HEAD a manifest: its descriptor, or None if absent."""
        url = self._url(name, "manifests", identifier)
        headers = {"Accept": MANIFEST_ACCEPT}
        async with await self._transport.request(
            "HEAD", url, operation="HEAD manifest", scopes=pull(name), headers=headers
        ) as resp:
            if resp.status == 404:
                return None
            await self._expect(
                resp, (200,), f"HEAD manifest {ref(name, identifier)}", "HEAD manifest"
            )
            digest = resp.headers.get("Docker-Content-Digest")
            media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
            length = resp.headers.get("Content-Length", "")
        known = media_type in MANIFEST_MEDIA_TYPES or media_type in SCHEMA1_MEDIA_TYPES
        if digest is None or not known or not length.isdigit():
            # Some registries and proxies leave the digest, the type or the length off a HEAD.
            # The descriptor goes into snapshots and history indexes, so it must be whole:
            # read the manifest itself instead.
            return (await self.get_manifest(name, identifier)).descriptor()
        validate_digest(digest)
        return Descriptor(media_type, digest, int(length))

    async def get_manifest(
        self, name: str, identifier: str, expected: Descriptor | None = None
    ) -> Manifest:
        """GET a manifest, capped at 4 MiB and checked against ``expected`` (or a pinned digest).

        A body cut short or corrupted on the way is fetched again at once, a bounded number of
        times.
        """

        def log_refetch(attempt: int, exc: BaseException, _delay: float) -> None:
            log.warning(
                "manifest_refetch",
                repository=name,
                reference=identifier,
                error=_cause(exc),
                attempt=attempt,
            )

        def broke(attempt: int, exc: BaseException) -> BaseException:
            if not isinstance(exc, ConnectionBroken):
                return exc
            return TransientError(
                f"GET manifest {ref(name, identifier)} on {self.registry} broke "
                f"{attempt} times: {exc.cause}",
                operation="GET manifest",
            )

        return await retrying(
            self.policy.immediate(),
            lambda _attempt: self._get_manifest_once(name, identifier, expected),
            retry_on=_REFETCHABLE,
            on_retry=log_refetch,
            exhausted=broke,
        )

    async def _get_manifest_once(
        self, name: str, identifier: str, expected: Descriptor | None
    ) -> Manifest:
        url = self._url(name, "manifests", identifier)
        what = f"GET manifest {ref(name, identifier)}"
        headers = {"Accept": MANIFEST_ACCEPT, "Accept-Encoding": "identity"}
        operation = "GET manifest"
        async with await self._transport.request(
            "GET", url, operation=operation, scopes=pull(name), headers=headers
        ) as resp:
            if resp.status == 404:
                said = await error_body(resp)
                raise NotFound(
                    f"manifest {self.registry}/{ref(name, identifier)} not found",
                    status=404,
                    operation=operation,
                    errors=said.diagnostics(),
                )
            await self._expect(resp, (200,), what, operation)
            limit: int = MAX_MANIFEST_BYTES
            too_large: type[ContentError] = InvalidManifest
            if expected is not None and 0 <= expected.size < MAX_MANIFEST_BYTES:
                # Never more than its descriptor claims: that is what the engine budgets.
                limit, too_large = expected.size, SizeMismatch
            raw = await read_capped(resp, limit, what, self.limits, too_large, operation)
            content_type = resp.headers.get("Content-Type")
            claimed = resp.headers.get("Docker-Content-Digest")
        if is_schema1(raw, content_type):  # a signed one never hashes to its registry digest
            raise InvalidManifest(
                f"manifest {self.registry}/{ref(name, identifier)} not copied: "
                f"{SCHEMA1_UNSUPPORTED}"
            )
        pinned = identifier if identifier.startswith(("sha256:", "sha512:")) else None
        # Pinned by digest, the hash is checked before a single byte is parsed. By tag, the
        # registry's Docker-Content-Digest is never trusted over the hash, but a registry
        # contradicting itself means the bytes were altered on the way: fetch them again.
        wanted = pinned or _valid_digest(claimed)
        if expected is None and wanted is not None:
            actual = digest_of(raw, wanted.partition(":")[0])
            if actual != wanted:
                raise DigestMismatch(
                    f"manifest {ref(name, identifier)} hashes to {actual}, not {wanted}"
                )
        return parse_manifest(raw, content_type, expected)

    async def put_manifest(self, name: str, identifier: str, manifest: Manifest) -> None:
        """PUT a manifest's exact bytes under a tag or its digest."""
        url = self._url(name, "manifests", identifier)
        headers = {"Content-Type": manifest.media_type}
        async with await self._transport.request(
            "PUT",
            url,
            operation="PUT manifest",
            scopes=push(name),
            headers=headers,
            data=manifest.raw,
        ) as resp:
            await self._expect(
                resp, (201, 200), f"PUT manifest {ref(name, identifier)}", "PUT manifest"
            )
            returned = resp.headers.get("Docker-Content-Digest")
        if returned and returned != manifest.digest:
            raise DigestMismatch(
                f"{self.registry} stored manifest {ref(name, identifier)} as {returned}, "
                f"not {manifest.digest}: it rewrote the bytes"
            )

    async def delete_tag(self, name: str, tag: str) -> None:
        """Delete the manifest a tag points at (the distribution API has no tag-only delete).

        Every tag on that digest goes with it; blobs are never deleted.
        """
        found = await self.resolve_manifest(name, tag)
        if found is None:
            return
        url = self._url(name, "manifests", found.digest)
        scopes = (repository_scope(name, "delete"), *push(name))
        async with await self._transport.request(
            "DELETE", url, operation="DELETE manifest", scopes=scopes
        ) as resp:
            await self._expect(resp, (202, 200, 404), f"delete {name}:{tag}", "DELETE manifest")

    # Blobs: checking, mounting, reading

    async def blob_size(self, name: str, digest: str) -> int | None:
        """HEAD a blob: its size, or None if absent."""
        url = self._url(name, "blobs", digest)
        async with await self._transport.request(
            "HEAD", url, operation="HEAD blob", scopes=pull(name)
        ) as resp:
            if resp.status == 404:
                return None
            await self._expect(resp, (200,), f"HEAD blob {name}@{digest}", "HEAD blob")
            return resp.content_length if resp.content_length is not None else -1

    async def mount_blob(self, name: str, digest: str, from_name: str) -> UploadSession | None:
        """Cross-repository mount. None when mounted; else the upload session to use instead."""
        url = yarl.URL(
            f"{self.registry.base_url}/v2/{name}/blobs/uploads/?mount={digest}&from={from_name}",
            encoded=True,
        )
        scopes = (*push(name), *pull(from_name))
        operation = "POST blob mount"
        async with await self._transport.request(
            "POST", url, operation=operation, scopes=scopes
        ) as resp:
            await self._expect(resp, (201, 202), f"mount {digest} into {name}", operation)
            if resp.status == 201:
                return None
            return UploadSession(name, str(self._transport.location(resp, operation)))

    @contextlib.asynccontextmanager
    async def open_blob(
        self, name: str, digest: str, offset: int = 0
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """GET a blob's bytes as served (no decompression), following redirects safely.

        With ``offset`` the request asks for ``Range: bytes=offset-``; the caller must check
        that the answer is a 206 starting there (see ``resumed_at``).
        """
        url = self._url(name, "blobs", digest)
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"

        async def fetch(attempt: int) -> aiohttp.ClientResponse:
            resp = await self._transport.request(
                "GET", url, operation="GET blob", scopes=pull(name), headers=headers
            )
            redirected = resp.url.origin() != self._transport.origin
            if resp.status == 403 and redirected and attempt <= _CDN_RETRIES:
                resp.release()
                log.warning("redirect_expired", digest=digest, url=redact_url(resp.url))
                raise _RedirectExpired("signed URL expired")
            return resp

        resp = await retrying(
            self.policy.immediate(_CDN_RETRIES + 1), fetch, retry_on=(_RedirectExpired,)
        )
        try:
            if resp.status == 404:
                said = await error_body(resp)
                raise NotFound(
                    f"blob {self.registry}/{name}@{digest} not found",
                    status=404,
                    operation="GET blob",
                    errors=said.diagnostics(),
                )
            await self._expect(resp, (200, 206), f"GET blob {name}@{digest}", "GET blob")
            yield resp
        finally:
            resp.release()

    @contextlib.asynccontextmanager
    async def read_blob(
        self, name: str, digest: str, offset: int = 0
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """The blob's bytes from ``offset``, as served; ResumeRefused unless a 206 starts there."""
        async with self.open_blob(name, digest, offset) as response:
            if offset and not resumed_at(response, offset):
                raise ResumeRefused(
                    f"{self.registry} did not resume {digest} at byte {offset}",
                    status=response.status,
                    operation="GET blob",
                )
            what = f"GET blob {name}@{digest}"
            yield chunks(response, READ_CHUNK, what, self.limits, "GET blob")

    # Blobs: uploading

    async def start_upload(self, name: str) -> UploadSession:
        return UploadSession(name, str(await self._uploads.start_upload(name)))

    async def cancel_upload(self, session: UploadSession) -> None:
        await self._uploads.cancel(session.name, yarl.URL(session.location, encoded=True))

    async def write_blob(
        self,
        name: str,
        blob: Descriptor,
        chunks: AsyncIterable[bytes],
        session: UploadSession | None,
    ) -> None:
        """Upload a blob from a stream, in ``session`` if given (see ``Uploads.write_blob``)."""
        await self._uploads.write_blob(name, blob, chunks, session)

    # Listings

    async def list_tags(self, name: str) -> list[str]:
        """Every tag of a repository, following ``Link`` pagination on the same origin only."""
        return await self._listings.list_tags(name)

    async def list_referrers(self, name: str, digest: str) -> list[Descriptor] | None:
        """``GET /v2/<name>/referrers/<digest>`` (OCI 1.1); None where the API is missing."""
        return await self._listings.list_referrers(name, digest)

    async def list_repositories(self) -> list[str]:
        """Every repository in ``/v2/_catalog`` (paginated, same origin only)."""
        return await self._listings.list_repositories()


def _cause(exc: BaseException) -> str:
    return exc.cause if isinstance(exc, ConnectionBroken) else type(exc).__name__


def _valid_digest(value: str | None) -> str | None:
    try:
        return validate_digest(value) if value else None
    except ValueError:
        return None
