"""The HTTP client for one registry (OCI distribution spec). Owns auth, retries and redaction.

Method names follow the protocol steps. Every repository name, tag and digest reaching a URL
here was validated by backup.reference when the Reference was built.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import AsyncIterable, AsyncIterator

import aiohttp
import structlog
import yarl

from backup.auth import Authenticator, Credentials, repository_scope
from backup.errorbody import MAX_ERROR_BODY, ErrorBody, parse_error_body
from backup.errors import (
    AuthError,
    BackupError,
    BodyTooLarge,
    DigestMismatch,
    InvalidManifest,
    NotFound,
    RegistryError,
    ResumeRefused,
    SizeMismatch,
    TransientError,
    UnsafeRedirect,
)
from backup.oci import (
    MANIFEST_ACCEPT,
    MAX_MANIFEST_BYTES,
    OCI_INDEX,
    SCHEMA1_UNSUPPORTED,
    Descriptor,
    Manifest,
    digest_of,
    is_schema1,
    parse_manifest,
)
from backup.redact import redact_text, redact_url
from backup.reference import Registry, validate_digest
from backup.retry import (
    RETRYABLE_EXCEPTIONS,
    HostBudget,
    RetryPolicy,
    parse_retry_after,
    retry_after_in_body,
    retryable_status,
)
from backup.store import READ_CHUNK
from backup.streambody import OneShotBody, exactly

log = structlog.get_logger("backup.registry")

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 5
_CDN_RETRIES = 2
# After a 413: chunks start below the refused size and at most this, halving on each 413.
_FALLBACK_FIRST_CHUNK = 16 * 2**20
_FALLBACK_MIN_CHUNK = 16 * 2**10
_REFETCHABLE: tuple[type[BaseException], ...] = (
    DigestMismatch,
    SizeMismatch,
    *RETRYABLE_EXCEPTIONS,
)

Body = bytes | AsyncIterable[bytes] | OneShotBody | None


def ref(name: str, identifier: str) -> str:
    """``name@sha256:…`` for a digest, ``name:tag`` for a tag, as docker and skopeo write them."""
    separator = "@" if ":" in identifier else ":"
    return f"{name}{separator}{identifier}"


def pull(name: str) -> tuple[str, ...]:
    return (repository_scope(name, "pull"),)


def push(name: str) -> tuple[str, ...]:
    return (repository_scope(name, "pull,push"),)


class RegistryClient:
    """Talks to one registry. Shares the run's aiohttp session; one instance per host."""

    def __init__(
        self,
        registry: Registry,
        session: aiohttp.ClientSession,
        credentials: Credentials | None,
        policy: RetryPolicy | None = None,
        chunk_size: int | None = None,
        max_request_rate: float | None = None,
    ) -> None:
        self.registry = registry
        self.chunk_size = chunk_size
        self._session = session
        self._auth = Authenticator(registry, credentials, session)
        self.policy = policy or RetryPolicy()
        self.budget = HostBudget(max_request_rate)
        self._origin = yarl.URL(registry.base_url).origin()
        self._has_referrers_api = True
        self.requests = 0

    def _url(self, name: str, kind: str, identifier: str) -> yarl.URL:
        return yarl.URL(f"{self.registry.base_url}/v2/{name}/{kind}/{identifier}", encoded=True)

    # Manifests

    async def resolve_manifest(self, name: str, identifier: str) -> Descriptor | None:
        """HEAD a manifest: its descriptor, or None if absent."""
        url = self._url(name, "manifests", identifier)
        headers = {"Accept": MANIFEST_ACCEPT}
        async with await self._request("HEAD", url, scopes=pull(name), headers=headers) as resp:
            if resp.status == 404:
                return None
            await self._expect(resp, (200,), f"HEAD manifest {ref(name, identifier)}")
            digest = resp.headers.get("Docker-Content-Digest")
        if digest is None:  # some registries omit it on HEAD: hash the body instead
            return (await self.get_manifest(name, identifier)).descriptor()
        validate_digest(digest)
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        return Descriptor(media_type, digest, int(resp.headers.get("Content-Length", -1)))

    async def get_manifest(
        self, name: str, identifier: str, expected: Descriptor | None = None
    ) -> Manifest:
        """GET a manifest, capped at 4 MiB and checked against ``expected`` (or a pinned digest).

        A body cut short or corrupted on the way is fetched again, a bounded number of times.
        """
        for attempt in range(1, self.policy.attempts + 1):
            try:
                return await self._get_manifest_once(name, identifier, expected)
            except _REFETCHABLE as exc:
                if attempt == self.policy.attempts:
                    if isinstance(exc, BackupError):
                        raise
                    raise TransientError(
                        f"GET manifest {ref(name, identifier)} on {self.registry} broke "
                        f"{attempt} times: {type(exc).__name__}"
                    ) from None
                log.warning(
                    "manifest_refetch",
                    repository=name,
                    reference=identifier,
                    error=type(exc).__name__,
                    attempt=attempt,
                )
        raise AssertionError("unreachable")

    async def _get_manifest_once(
        self, name: str, identifier: str, expected: Descriptor | None
    ) -> Manifest:
        url = self._url(name, "manifests", identifier)
        headers = {"Accept": MANIFEST_ACCEPT, "Accept-Encoding": "identity"}
        async with await self._request("GET", url, scopes=pull(name), headers=headers) as resp:
            if resp.status == 404:
                raise NotFound(
                    f"manifest {self.registry}/{ref(name, identifier)} not found", status=404
                )
            await self._expect(resp, (200,), f"GET manifest {ref(name, identifier)}")
            declared = resp.content_length
            if declared is not None and declared > MAX_MANIFEST_BYTES:
                raise InvalidManifest(
                    f"manifest {ref(name, identifier)} is {declared} bytes, over the 4 MiB limit"
                )
            raw = await _read_capped(resp, MAX_MANIFEST_BYTES)
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
        async with await self._request(
            "PUT", url, scopes=push(name), headers=headers, data=manifest.raw
        ) as resp:
            await self._expect(resp, (201, 200), f"PUT manifest {ref(name, identifier)}")
            returned = resp.headers.get("Docker-Content-Digest")
        if returned and returned != manifest.digest:
            raise DigestMismatch(
                f"{self.registry} stored manifest {ref(name, identifier)} as {returned}, "
                f"not {manifest.digest}: it rewrote the bytes"
            )

    # Blobs

    async def blob_size(self, name: str, digest: str) -> int | None:
        """HEAD a blob: its size, or None if absent."""
        url = self._url(name, "blobs", digest)
        async with await self._request("HEAD", url, scopes=pull(name)) as resp:
            if resp.status == 404:
                return None
            await self._expect(resp, (200,), f"HEAD blob {name}@{digest}")
            return resp.content_length if resp.content_length is not None else -1

    async def mount_blob(self, name: str, digest: str, from_name: str) -> yarl.URL | None:
        """Cross-repository mount. None when mounted; else the upload session to use instead."""
        url = yarl.URL(
            f"{self.registry.base_url}/v2/{name}/blobs/uploads/?mount={digest}&from={from_name}",
            encoded=True,
        )
        scopes = (*push(name), *pull(from_name))
        async with await self._request("POST", url, scopes=scopes) as resp:
            await self._expect(resp, (201, 202), f"mount {digest} into {name}")
            if resp.status == 201:
                return None
            return self._location(resp)

    async def start_upload(self, name: str) -> yarl.URL:
        url = yarl.URL(f"{self.registry.base_url}/v2/{name}/blobs/uploads/", encoded=True)
        async with await self._request("POST", url, scopes=push(name)) as resp:
            await self._expect(resp, (202,), f"start upload to {name}")
            return self._location(resp)

    async def put_blob(
        self, name: str, location: yarl.URL, descriptor: Descriptor, body: AsyncIterable[bytes]
    ) -> None:
        """Finish an upload session with the whole body in one PUT (monolithic upload)."""
        url = _with_digest(location, descriptor.digest)
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(descriptor.size),
        }
        what = f"blob {descriptor.digest}"
        data = OneShotBody(exactly(body, descriptor.size, what))
        async with await self._request(
            "PUT", url, scopes=push(name), headers=headers, data=data
        ) as resp:
            await self._expect(resp, (201, 204), f"PUT blob {name}@{descriptor.digest}")

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
        for attempt in range(_CDN_RETRIES + 1):
            resp = await self._request("GET", url, scopes=pull(name), headers=headers)
            # A signed CDN URL that expired answers 403: ask the registry for a fresh one.
            redirected = resp.url.origin() != self._origin
            if resp.status == 403 and redirected and attempt < _CDN_RETRIES:
                resp.release()
                log.warning("redirect_expired", digest=digest, url=redact_url(resp.url))
                continue
            try:
                if resp.status == 404:
                    raise NotFound(f"blob {self.registry}/{name}@{digest} not found", status=404)
                await self._expect(resp, (200, 206), f"GET blob {name}@{digest}")
                yield resp
            finally:
                resp.release()
            return

    @contextlib.asynccontextmanager
    async def read_blob(
        self, name: str, digest: str, offset: int = 0
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """The blob's bytes from ``offset``, as served; ResumeRefused unless a 206 starts there."""
        async with self.open_blob(name, digest, offset) as response:
            if offset and not resumed_at(response, offset):
                raise ResumeRefused(f"{self.registry} did not resume {digest} at byte {offset}")
            yield response.content.iter_chunked(READ_CHUNK)

    async def write_blob(
        self, name: str, blob: Descriptor, chunks: AsyncIterable[bytes], session: object | None
    ) -> None:
        """Upload in one streamed PUT, or in PATCH chunks when ``chunk_size`` is set.

        A 413 to the one-PUT upload (a proxy's body limit, e.g. nginx ``client_max_body_size``)
        switches this registry to chunks below the refused size; the stream is spent, so the
        caller sends the blob again in a new session (TransientError).
        """
        location = session if isinstance(session, yarl.URL) else await self.start_upload(name)
        if self.chunk_size:
            await self._write_chunks(name, location, blob, chunks)
            return
        try:
            await self.put_blob(name, location, blob, chunks)
        except BodyTooLarge:
            self._shrink_chunks(blob.size)
            await self._cancel_upload(name, location)
            raise TransientError(
                f"{self.registry} refused a {blob.size}-byte request body (HTTP 413); "
                f"blob {blob.digest} is sent again in chunks of {self.chunk_size} bytes"
            ) from None

    async def _write_chunks(
        self, name: str, location: yarl.URL, blob: Descriptor, chunks: AsyncIterable[bytes]
    ) -> None:
        buffer = bytearray()
        offset = 0
        async for data in chunks:
            buffer += data
            while self.chunk_size and len(buffer) >= self.chunk_size:
                size = self.chunk_size
                location = await self._patch_fitting(name, location, bytes(buffer[:size]), offset)
                offset += size
                del buffer[:size]
        if buffer:
            location = await self._patch_fitting(name, location, bytes(buffer), offset)
        await self.finish_upload(name, location, blob)

    async def _patch_fitting(
        self, name: str, location: yarl.URL, data: bytes, offset: int
    ) -> yarl.URL:
        """PATCH ``data``, in smaller pieces for as long as the registry answers 413."""
        sent = 0
        while sent < len(data):
            piece = data[sent : sent + (self.chunk_size or len(data))]
            try:
                location = await self.patch_chunk(name, location, piece, offset + sent)
            except BodyTooLarge:  # refused before it reached the registry: same session
                self._shrink_chunks(len(piece))
                continue
            sent += len(piece)
        return location

    def _shrink_chunks(self, refused: int) -> None:
        """After a 413 for ``refused`` bytes: chunks below that, at most 16 MiB, never grown."""
        size = min(_FALLBACK_FIRST_CHUNK, _power_of_two_below(refused))
        if self.chunk_size:
            size = min(size, self.chunk_size)
        if size < _FALLBACK_MIN_CHUNK:
            raise BodyTooLarge(
                f"{self.registry} refuses request bodies of {refused} bytes (HTTP 413), even "
                "as upload chunks: raise its body limit (nginx: client_max_body_size)",
                status=413,
            )
        if self.chunk_size is None:  # once per registry and run
            log.warning(
                "upload_switched_to_chunks",
                registry=str(self.registry),
                refused_bytes=refused,
                chunk_size=size,
                hint="a proxy limits request bodies (HTTP 413); raise client_max_body_size "
                "or set --chunk-size",
            )
        else:
            log.info("upload_chunk_size_reduced", registry=str(self.registry), chunk_size=size)
        self.chunk_size = size

    async def _cancel_upload(self, name: str, location: yarl.URL) -> None:
        """Best effort: end an upload session the registry never saw a byte of."""
        with contextlib.suppress(BackupError):
            (await self._request("DELETE", location, scopes=push(name))).release()

    async def list_referrers(self, name: str, digest: str) -> list[Descriptor] | None:
        """``GET /v2/<name>/referrers/<digest>`` (OCI 1.1); None where the API is missing."""
        if not self._has_referrers_api:
            return None
        url: yarl.URL | None = self._url(name, "referrers", digest)
        found: list[Descriptor] = []
        while url is not None:
            headers = {"Accept": OCI_INDEX}
            async with await self._request("GET", url, scopes=pull(name), headers=headers) as resp:
                if resp.status in (404, 405, 400):  # GHCR and distribution 2.8 have no such API
                    self._has_referrers_api = False  # ask once per registry and run, not per image
                    return None
                await self._expect(resp, (200,), f"list referrers of {name}@{digest}")
                raw = await _read_capped(resp, MAX_MANIFEST_BYTES)
                link = _next_link(resp)
            found += parse_manifest(raw, OCI_INDEX).children()
            url = None if link is None else self._same_origin(url, link, "referrers")
        return found

    async def list_repositories(self) -> list[str]:
        """Every repository in ``/v2/_catalog`` (paginated, same origin only)."""
        url: yarl.URL | None = yarl.URL(
            f"{self.registry.base_url}/v2/_catalog?n=1000", encoded=True
        )
        names: list[str] = []
        while url is not None:
            async with await self._request("GET", url, scopes=("registry:catalog:*",)) as resp:
                await self._expect(resp, (200,), "list the catalog")
                body = await resp.json(content_type=None)
                link = _next_link(resp)
            names += [str(n) for n in (body.get("repositories") or []) if isinstance(n, str)]
            url = None if link is None else self._same_origin(url, link, "catalog")
        return names

    async def delete_tag(self, name: str, tag: str) -> None:
        """Delete the manifest a tag points at (the distribution API has no tag-only delete).

        Every tag on that digest goes with it; blobs are never deleted.
        """
        found = await self.resolve_manifest(name, tag)
        if found is None:
            return
        url = self._url(name, "manifests", found.digest)
        scopes = (repository_scope(name, "delete"), *push(name))
        async with await self._request("DELETE", url, scopes=scopes) as resp:
            await self._expect(resp, (202, 200, 404), f"delete {name}:{tag}")

    async def patch_chunk(
        self, name: str, location: yarl.URL, data: bytes, offset: int
    ) -> yarl.URL:
        """PATCH one chunk of a chunked upload; resume at the registry's Range after a break.

        Returns the session's next Location. Raises TransientError when the session cannot be
        resumed (the caller starts a new one).
        """
        sent = 0
        for _ in range(self.policy.attempts):
            body = data[sent:]
            headers = {
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{offset + sent}-{offset + len(data) - 1}",
                "Content-Length": str(len(body)),
            }
            try:
                async with await self._request(
                    "PATCH", location, scopes=push(name), headers=headers, data=body
                ) as resp:
                    await self._expect(resp, (202, 204), f"PATCH upload to {name}")
                    return self._location(resp)
            except TransientError:
                location, received = await self.upload_status(name, location)
                if not offset <= received <= offset + len(data):
                    raise
                sent = received - offset
                log.warning("upload_resumed", repository=name, offset=received)
                if sent == len(data):
                    return location
        raise TransientError(f"PATCH upload to {name} kept failing")

    async def upload_status(self, name: str, location: yarl.URL) -> tuple[yarl.URL, int]:
        """How many bytes an upload session holds (``Range: 0-N``), and its current Location."""
        try:
            async with await self._request("GET", location, scopes=push(name)) as resp:
                await self._expect(resp, (204,), f"upload status in {name}")
                end = resp.headers.get("Range", "0--1").rpartition("-")[2]
                return self._location(resp), int(end) + 1
        except (RegistryError, ValueError):
            raise TransientError(f"upload session in {name} cannot be resumed") from None

    async def finish_upload(self, name: str, location: yarl.URL, descriptor: Descriptor) -> None:
        """Close a chunked upload with an empty PUT naming the digest."""
        url = _with_digest(location, descriptor.digest)
        headers = {"Content-Type": "application/octet-stream", "Content-Length": "0"}
        async with await self._request(
            "PUT", url, scopes=push(name), headers=headers, data=b""
        ) as resp:
            await self._expect(resp, (201, 204), f"PUT blob {name}@{descriptor.digest}")

    async def list_tags(self, name: str) -> list[str]:
        """Every tag of a repository, following ``Link`` pagination on the same origin only."""
        url: yarl.URL | None = yarl.URL(
            f"{self.registry.base_url}/v2/{name}/tags/list?n=1000", encoded=True
        )
        tags: list[str] = []
        while url is not None:
            async with await self._request("GET", url, scopes=pull(name)) as resp:
                if resp.status == 404:
                    return tags
                await self._expect(resp, (200,), f"list tags of {name}")
                body = await resp.json(content_type=None)
                link = _next_link(resp)
            tags += [str(t) for t in (body.get("tags") or []) if isinstance(t, str)]
            url = None if link is None else self._same_origin(url, link, f"tags of {name}")
        return tags

    # Plumbing

    def _same_origin(self, current: yarl.URL, link: str, what: str) -> yarl.URL:
        following = current.join(yarl.URL(link, encoded=True))
        if following.origin() != self._origin:
            raise UnsafeRedirect(f"{self.registry} paginated {what} to another origin; refusing")
        return following

    def _location(self, resp: aiohttp.ClientResponse) -> yarl.URL:
        location = resp.headers.get("Location")
        if not location:
            raise RegistryError(f"{self.registry} started an upload without a Location header")
        target = resp.url.join(yarl.URL(location, encoded=True))
        self._check_redirect(resp.url, target)
        return target

    @staticmethod
    def _check_redirect(source: yarl.URL, target: yarl.URL) -> None:
        if target.scheme not in ("http", "https"):
            raise UnsafeRedirect(f"refusing redirect to a non-http URL from {redact_url(source)}")
        if source.scheme == "https" and target.scheme != "https":
            raise UnsafeRedirect(
                f"refusing https-to-http redirect from {redact_url(source)} to {redact_url(target)}"
            )

    async def _request(
        self,
        method: str,
        url: yarl.URL,
        *,
        scopes: tuple[str, ...],
        headers: dict[str, str] | None = None,
        data: Body = None,
    ) -> aiohttp.ClientResponse:
        """Send with auth, retries and safe redirects. The caller releases the response."""
        replayable = data is None or isinstance(data, bytes)
        deadline = time.monotonic() + self.policy.budget_s
        attempt, reauthenticated = 0, False
        while True:
            attempt += 1
            await self.budget.acquire()
            retries_left = replayable and attempt < self.policy.attempts
            same_origin = url.origin() == self._origin
            # The first request to a registry learns its auth scheme while the others wait:
            # however it ends (answer, refusal, error, cancellation), the waiters are released.
            probe = same_origin and self._auth.claim_probe()
            try:
                authorization = (
                    await self._auth.header(scopes) if same_origin and not probe else None
                )
                sent = dict(headers or {})
                if authorization:
                    sent["Authorization"] = authorization
                try:
                    resp = await self._send(method, url, sent, data)
                except aiohttp.ClientSSLError as exc:  # not transient: retrying will not fix trust
                    raise RegistryError(_tls_hint(url, exc)) from None
                except RETRYABLE_EXCEPTIONS as exc:
                    if not retries_left or time.monotonic() >= deadline:
                        raise TransientError(
                            f"{method} {redact_url(url)} failed after {attempt} attempt(s): "
                            f"{type(exc).__name__}: {redact_text(str(exc))[:200]}"
                        ) from None
                    failure: BaseException | None = exc
                else:
                    failure = None
                    if (
                        resp.status == 401
                        and not reauthenticated
                        and resp.url.origin() == self._origin
                    ):
                        challenge = resp.headers.get("WWW-Authenticate")
                        resp.release()
                        log.debug(
                            "auth_challenge",
                            registry=str(self.registry),
                            renewing=bool(authorization),
                        )
                        await self._auth.challenge(challenge, scopes, sent=authorization)
                        reauthenticated, attempt = True, attempt - 1
                        if not replayable:  # the body is spent: the transfer restarts
                            raise TransientError(
                                f"{self.registry} asked to re-authenticate mid-upload"
                            )
                        continue
            finally:
                if probe:
                    self._auth.settle()
            if failure is not None:
                delay = self.policy.delay(attempt)
                log.warning(
                    "request_retry",
                    method=method,
                    url=redact_url(url),
                    error=type(failure).__name__,
                    attempt=attempt,
                    delay_s=round(delay, 2),
                )
                await asyncio.sleep(delay)
                continue
            if (
                retries_left
                and time.monotonic() < deadline
                and retryable_status(resp.status)
                and await self._worth_retrying(resp)
            ):
                retry_after = _retry_after(resp)
                if resp.status == 429:
                    retry_after = retry_after or await _retry_after_in_body(resp)
                    rate = self.budget.too_many_requests()
                    log.warning(
                        "request_rate_lowered",
                        registry=str(self.registry),
                        method=method,
                        requests_per_s=round(rate, 2),
                        retry_after_s=retry_after,
                    )
                if retry_after is not None:
                    self.budget.pause(min(retry_after, self.policy.max_retry_after_s))
                delay = self.policy.delay(attempt, retry_after)
                resp.release()
                log.warning(
                    "request_retry",
                    method=method,
                    url=redact_url(url),
                    status=resp.status,
                    attempt=attempt,
                    delay_s=round(delay, 2),
                )
                await asyncio.sleep(delay)
                continue
            if resp.status != 429:
                self.budget.answered()
            return resp

    @staticmethod
    async def _worth_retrying(resp: aiohttp.ClientResponse) -> bool:
        """A retryable status, unless a 5xx body names a client error (the same request fails
        the same way: distribution sends some refusals as 500)."""
        if resp.status < 500:
            return True
        return not (await _error_body(resp)).client_error

    async def _send(
        self, method: str, url: yarl.URL, headers: dict[str, str], data: Body
    ) -> aiohttp.ClientResponse:
        for _ in range(_MAX_REDIRECTS + 1):
            self.requests += 1
            resp = await self._session.request(
                method, url, headers=headers, data=data, allow_redirects=False
            )
            if data is not None and not 200 <= resp.status < 300:
                _never_reuse(resp)  # before any await: the pool must not get it back
            if resp.status not in _REDIRECTS or method not in ("GET", "HEAD"):
                return resp
            location = resp.headers.get("Location", "")
            resp.release()
            target = url.join(yarl.URL(location, encoded=True))
            self._check_redirect(url, target)
            if target.origin() != url.origin():
                # Never carry the registry's credentials to another host (CDN, object store).
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            url = target
        raise RegistryError(f"too many redirects from {redact_url(url)}")

    async def _expect(self, resp: aiohttp.ClientResponse, ok: tuple[int, ...], what: str) -> None:
        if resp.status in ok:
            return
        said = await _error_body(resp)
        detail = f": {said.summary()}" if said.summary() else ""
        where = f"{what} on {self.registry}"
        if resp.status in (401, 403):
            raise AuthError(
                f"{where}: HTTP {resp.status}{detail}; check the credentials for "
                f"{self.registry.host} (docker config.json) and that they grant this access",
                status=resp.status,
            )
        if resp.status == 404:
            raise NotFound(f"{where}: not found{detail}", status=404)
        if resp.status == 413:
            raise BodyTooLarge(
                f"{where}: HTTP 413{detail}; the registry or a proxy in front of it limits "
                "request bodies: raise that limit (nginx: client_max_body_size)",
                status=413,
            )
        if retryable_status(resp.status) and not said.client_error:
            raise TransientError(
                f"{where}: HTTP {resp.status}{detail}; it persisted", status=resp.status
            )
        raise RegistryError(f"{where}: HTTP {resp.status}{detail}", status=resp.status)


def _never_reuse(resp: aiohttp.ClientResponse) -> None:
    """Close this connection once the answer is read, instead of pooling it.

    An answer other than success to a request with a body may come before the body was all
    sent (a proxy refusing at the headers, a body stream that broke). A reused connection
    then carries the next request into the middle of the old body: the server reads it as
    body bytes, then fails to parse what follows (aiohttp: BadHttpMethod).
    """
    connection = resp.connection
    if connection is not None and connection.protocol is not None:
        connection.protocol.force_close()


def _with_digest(location: yarl.URL, digest: str) -> yarl.URL:
    """The upload URL that commits ``digest``: appended to the registry's own query, which
    carries the session state and must not be rebuilt or re-quoted."""
    separator = "&" if location.raw_query_string else "?"
    return yarl.URL(f"{location}{separator}digest={digest}", encoded=True)


def _power_of_two_below(size: int) -> int:
    """The largest power of two strictly below ``size`` (1 for sizes up to 2)."""
    return 1 << max((size - 1).bit_length() - 1, 0)


def _valid_digest(value: str | None) -> str | None:
    try:
        return validate_digest(value) if value else None
    except ValueError:
        return None


def _next_link(resp: aiohttp.ClientResponse) -> str | None:
    """The rel="next" target of a Link header, if any."""
    for part in resp.headers.get("Link", "").split(","):
        target, _, params = part.partition(";")
        if 'rel="next"' in params.replace(" ", "") and target.strip().startswith("<"):
            return target.strip()[1:-1]
    return None


def resumed_at(resp: aiohttp.ClientResponse, offset: int) -> bool:
    """True if a ranged GET really answered from ``offset`` (206 + matching Content-Range)."""
    if resp.status != 206:
        return False
    content_range = resp.headers.get("Content-Range", "")
    unit, _, rest = content_range.partition(" ")
    start = rest.partition("-")[0]
    return unit == "bytes" and start.isdigit() and int(start) == offset


def _retry_after(resp: aiohttp.ClientResponse) -> float | None:
    return parse_retry_after(resp.headers.get("Retry-After"))


async def _retry_after_in_body(resp: aiohttp.ClientResponse) -> float | None:
    """GHCR puts its 429 hint in the error message rather than in a header."""
    if resp.method == "HEAD":
        return None
    try:
        text = (await resp.content.read(64 * 1024)).decode(errors="replace")
    except (aiohttp.ClientError, TimeoutError):
        return None
    return retry_after_in_body(text)


async def _read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        total += len(chunk)
        if total > limit:
            raise InvalidManifest(f"manifest body exceeds the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


# What each error answer said, read once: the retry decision and the message both need it.
_ERROR_BODIES: weakref.WeakKeyDictionary[aiohttp.ClientResponse, ErrorBody] = (
    weakref.WeakKeyDictionary()
)


async def _error_body(resp: aiohttp.ClientResponse) -> ErrorBody:
    """The registry's error entries (or an HTML page's title), from the body's first 64 KiB."""
    if resp.method == "HEAD":
        return ErrorBody()
    cached = _ERROR_BODIES.get(resp)
    if cached is None:
        raw = bytearray()
        try:
            while len(raw) < MAX_ERROR_BODY and (
                piece := await resp.content.read(MAX_ERROR_BODY - len(raw))
            ):
                raw += piece
        except (TimeoutError, aiohttp.ClientError, ValueError):
            pass  # a body cut short says what it managed to
        cached = _ERROR_BODIES[resp] = parse_error_body(
            bytes(raw), resp.headers.get("Content-Type")
        )
    return cached


def _tls_hint(url: yarl.URL, exc: aiohttp.ClientSSLError) -> str:
    """What a failed TLS handshake most likely means, and what to do about it."""
    reason = str(getattr(exc, "os_error", "") or exc)
    host = f"{url.host}:{url.explicit_port}" if url.explicit_port else str(url.host)
    if "WRONG_VERSION_NUMBER" in reason or "wrong version number" in reason:
        # The server answered the ClientHello with plain HTTP.
        return (
            f"TLS to {host} failed: it answers in plain HTTP. If that is intended (a "
            f"registry on a private network), write the reference as http://{host}/..."
        )
    return (
        f"TLS to {host} failed ({type(exc).__name__}): if it uses a private CA, pass "
        "--ca-file with that CA's PEM bundle"
    )
