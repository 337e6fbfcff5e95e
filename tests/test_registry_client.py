"""Registry client edge cases, with aioresponses standing in for the registry."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aioresponses import aioresponses
from yarl import URL

from github_org_backup.base.retry import RetryPolicy, parse_retry_after
from github_org_backup.errors import (
    AuthError,
    BodyTooLarge,
    DigestMismatch,
    InvalidManifest,
    NotFound,
    RegistryDiagnostic,
    RegistryError,
    TransientError,
    UnsafeRedirect,
)
from github_org_backup.model.oci import OCI_MANIFEST, Descriptor, digest_of, parse_manifest
from github_org_backup.model.reference import Registry
from github_org_backup.stores.registry import RegistryClient
from github_org_backup.stores.registry.credentials import Credentials

BASE = "https://r.example.com"
FAST = RetryPolicy(attempts=4, base_delay_s=0.001, max_delay_s=0.002, max_retry_after_s=0.01)
RAW = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "x", "digest": "sha256:" + "1" * 64, "size": 1},
        "layers": [],
    }
).encode()
DIGEST = digest_of(RAW)


@pytest.fixture
async def client() -> AsyncIterator[RegistryClient]:
    async with aiohttp.ClientSession() as session:
        yield RegistryClient(Registry("r.example.com"), session, Credentials("u", "p"), FAST)


def calls(mocked: aioresponses) -> list[tuple[str, URL, dict[str, str]]]:
    return [
        (m, u, c.kwargs.get("headers") or {}) for (m, u), cs in mocked.requests.items() for c in cs
    ]


async def test_transient_statuses_are_retried(client: RegistryClient) -> None:
    """503 and 429 are retried; the eventual 200 is returned."""
    url = f"{BASE}/v2/a/manifests/{DIGEST}"
    with aioresponses() as mocked:
        mocked.get(url, status=503)
        mocked.get(url, status=429, headers={"Retry-After": "0"})
        mocked.get(url, status=200, body=RAW, headers={"Content-Type": OCI_MANIFEST})
        manifest = await client.get_manifest("a", DIGEST)
    assert manifest.digest == DIGEST
    assert client.requests == 3


async def test_retries_are_bounded(client: RegistryClient) -> None:
    """A fault that persists ends in TransientError after the policy's attempts."""
    url = f"{BASE}/v2/a/blobs/{DIGEST}"
    with aioresponses() as mocked:
        for _ in range(FAST.attempts):
            mocked.head(url, status=502)
        with pytest.raises(TransientError, match="502"):
            await client.blob_size("a", DIGEST)
    assert client.requests == FAST.attempts


async def test_connection_errors_are_retried(client: RegistryClient) -> None:
    """A reset connection is transient."""
    url = f"{BASE}/v2/a/blobs/{DIGEST}"
    with aioresponses() as mocked:
        mocked.head(url, exception=aiohttp.ServerDisconnectedError())
        mocked.head(url, status=200, headers={"Content-Length": "7"})
        assert await client.blob_size("a", DIGEST) == 7


async def test_other_client_errors_are_not_retried(client: RegistryClient) -> None:
    """A 400 fails at once and carries the registry's error code."""
    url = f"{BASE}/v2/a/manifests/t"
    body = {"errors": [{"code": "MANIFEST_INVALID", "message": "bad"}]}
    with aioresponses() as mocked:
        mocked.put(url, status=400, payload=body)
        with pytest.raises(RegistryError, match="MANIFEST_INVALID"):
            await client.put_manifest("a", "t", parse_manifest(RAW, OCI_MANIFEST))
    assert client.requests == 1


async def test_absent_manifest_and_blob(client: RegistryClient) -> None:
    """404 is None for HEAD lookups and NotFound for GET."""
    with aioresponses() as mocked:
        mocked.head(f"{BASE}/v2/a/manifests/t", status=404)
        mocked.head(f"{BASE}/v2/a/blobs/{DIGEST}", status=404)
        mocked.get(f"{BASE}/v2/a/manifests/t", status=404)
        assert await client.resolve_manifest("a", "t") is None
        assert await client.blob_size("a", DIGEST) is None
        with pytest.raises(NotFound):
            await client.get_manifest("a", "t")


async def test_lying_content_digest_header_is_not_trusted(client: RegistryClient) -> None:
    """A manifest fetched by digest is hashed; the header cannot vouch for other bytes."""
    other = RAW.replace(b'"layers": []', b'"layers": [] ')
    with aioresponses() as mocked:
        mocked.get(
            f"{BASE}/v2/a/manifests/{DIGEST}",
            body=other,
            repeat=True,
            headers={"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": DIGEST},
        )
        with pytest.raises(DigestMismatch):
            await client.get_manifest("a", DIGEST)
    assert client.requests == FAST.attempts  # fetched again in case of corruption, then refused


async def test_oversized_manifest_is_refused_by_length(client: RegistryClient) -> None:
    """A manifest body over 4 MiB is refused."""
    with aioresponses() as mocked:
        mocked.get(
            f"{BASE}/v2/a/manifests/t",
            body=b" " * (4 * 2**20 + 1),
            headers={"Content-Type": OCI_MANIFEST},
        )
        with pytest.raises(InvalidManifest, match="limit"):
            await client.get_manifest("a", "t")


async def test_registry_that_rewrites_a_manifest_is_caught(client: RegistryClient) -> None:
    """A PUT answered with another digest means the bytes were changed: an error."""
    with aioresponses() as mocked:
        mocked.put(
            f"{BASE}/v2/a/manifests/t",
            status=201,
            headers={"Docker-Content-Digest": "sha256:" + "9" * 64},
        )
        with pytest.raises(DigestMismatch, match="rewrote"):
            await client.put_manifest("a", "t", parse_manifest(RAW, OCI_MANIFEST))


async def test_cross_host_redirect_drops_authorization(client: RegistryClient) -> None:
    """Credentials never follow a blob redirect to a CDN host."""
    url = f"{BASE}/v2/a/blobs/{DIGEST}"
    cdn = "https://cdn.example.net/blob?sig=SECRET"
    with aioresponses() as mocked:
        mocked.get(url, status=401, headers={"WWW-Authenticate": 'Basic realm="r"'})
        mocked.get(url, status=307, headers={"Location": cdn})
        mocked.get(cdn, status=200, body=b"data")
        async with client.open_blob("a", DIGEST) as response:
            assert await response.read() == b"data"
        sent = calls(mocked)
    registry_headers = [h for _, u, h in sent if u.host == "r.example.com"]
    cdn_headers = [h for _, u, h in sent if u.host == "cdn.example.net"]
    assert "Authorization" in registry_headers[-1]
    assert cdn_headers and all("Authorization" not in h for h in cdn_headers)


async def test_expired_cdn_url_is_requested_again(client: RegistryClient) -> None:
    """A 403 from the CDN asks the registry for a fresh redirect."""
    url = f"{BASE}/v2/a/blobs/{DIGEST}"
    with aioresponses() as mocked:
        mocked.get(url, status=307, headers={"Location": "https://cdn.example.net/1?sig=old"})
        mocked.get("https://cdn.example.net/1?sig=old", status=403)
        mocked.get(url, status=307, headers={"Location": "https://cdn.example.net/1?sig=new"})
        mocked.get("https://cdn.example.net/1?sig=new", status=200, body=b"ok")
        async with client.open_blob("a", DIGEST) as response:
            assert await response.read() == b"ok"


async def test_https_to_http_redirect_is_refused(client: RegistryClient) -> None:
    """A downgrade redirect is an UnsafeRedirect whose message hides the query."""
    url = f"{BASE}/v2/a/blobs/{DIGEST}"
    with aioresponses() as mocked:
        mocked.get(url, status=302, headers={"Location": "http://cdn.example.net/x?sig=SECRET"})
        with pytest.raises(UnsafeRedirect) as caught:
            async with client.open_blob("a", DIGEST):
                pass
    assert "SECRET" not in str(caught.value)


def test_retry_after_both_forms() -> None:
    """Retry-After is read as delta-seconds or as an HTTP-date."""
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None
    assert FAST.delay(1, retry_after=1000) == FAST.max_retry_after_s


async def test_tag_pagination_stays_on_the_same_origin(client: RegistryClient) -> None:
    """Tag lists follow Link rel="next" on the registry, and refuse to leave it."""
    first = f"{BASE}/v2/a/tags/list?n=1000"
    with aioresponses() as mocked:
        mocked.get(
            first,
            payload={"tags": ["1", "2"]},
            headers={"Link": '</v2/a/tags/list?last=2&n=1000>; rel="next"'},
        )
        mocked.get(f"{BASE}/v2/a/tags/list?last=2&n=1000", payload={"tags": ["3"]})
        assert await client.list_tags("a") == ["1", "2", "3"]
        mocked.get(
            first,
            payload={"tags": ["1"]},
            headers={"Link": '<https://evil.example.net/v2/a/tags/list>; rel="next"'},
        )
        with pytest.raises(UnsafeRedirect, match="another origin"):
            await client.list_tags("a")


async def test_referrers_api_and_its_absence(client: RegistryClient) -> None:
    """A 200 index lists referrers; a 404 means no API, and it is not asked again."""
    url = f"{BASE}/v2/a/referrers/{DIGEST}"
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": "sha256:" + "5" * 64,
                "size": 10,
                "artifactType": "application/spdx+json",
            }
        ],
    }
    with aioresponses() as mocked:
        mocked.get(
            url, payload=index, headers={"Content-Type": "application/vnd.oci.image.index.v1+json"}
        )
        found = await client.list_referrers("a", DIGEST)
        assert found is not None and [d.digest for d in found] == ["sha256:" + "5" * 64]
        mocked.get(url, status=404)
        assert await client.list_referrers("a", DIGEST) is None
        requests = client.requests
        assert await client.list_referrers("a", DIGEST) is None
        assert client.requests == requests


async def test_tag_fetch_that_contradicts_its_own_digest_header_is_refused(
    client: RegistryClient,
) -> None:
    """By tag there is nothing to pin, but bytes that do not hash to the registry's own
    Docker-Content-Digest were altered on the way: fetched again, then refused."""
    other = RAW + b"\n"
    with aioresponses() as mocked:
        mocked.get(
            f"{BASE}/v2/a/manifests/v1",
            body=other,
            repeat=True,
            headers={"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": DIGEST},
        )
        with pytest.raises(DigestMismatch):
            await client.get_manifest("a", "v1")
        mocked.get(
            f"{BASE}/v2/a/manifests/v2",
            body=RAW,
            headers={"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": DIGEST},
        )
        assert (await client.get_manifest("a", "v2")).digest == DIGEST


# What the registry said, and what is worth another try

DISTRIBUTION_500 = {  # distribution 2.8's answer to a manifest with a foreign layer
    "errors": [
        {"code": "UNKNOWN", "message": "unknown error"},
        {"code": "UNKNOWN", "message": "unknown error", "detail": {}},
        {
            "code": "MANIFEST_BLOB_UNKNOWN",
            "message": "blob unknown to registry",
            "detail": "sha256:" + "a" * 64,
        },
    ]
}
NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n"
    "</body>\r\n</html>\r\n"
)


async def test_every_error_entry_is_shown_with_digest_references(client: RegistryClient) -> None:
    """All codes and messages appear, with a short detail; a digest reference reads repo@digest."""
    url = f"{BASE}/v2/a/manifests/{DIGEST}"
    with aioresponses() as mocked:
        mocked.put(url, status=500, payload=DISTRIBUTION_500)
        with pytest.raises(RegistryError) as caught:
            await client.put_manifest("a", DIGEST, parse_manifest(RAW, OCI_MANIFEST))
    message = str(caught.value)
    assert f"PUT manifest a@{DIGEST} on r.example.com: HTTP 500: " in message
    assert "UNKNOWN: unknown error (×2)" in message
    assert f"MANIFEST_BLOB_UNKNOWN: blob unknown to registry (sha256:{'a' * 64})" in message


@pytest.mark.parametrize(
    "entry",
    [
        {"code": code, "message": "refused"}
        for code in (
            "MANIFEST_INVALID",
            "MANIFEST_BLOB_UNKNOWN",
            "DIGEST_INVALID",
            "NAME_INVALID",
            "TAG_INVALID",
            "BLOB_UNKNOWN",
            "SIZE_INVALID",
        )
    ]
    + [{"code": "UNKNOWN", "message": "unknown error", "detail": "invalid URL on layer"}],
    ids=lambda e: str(e.get("detail") or e["code"]),
)
async def test_a_client_error_sent_with_a_500_is_not_retried(
    client: RegistryClient, entry: dict[str, str]
) -> None:
    """A 500 whose body names a fault in the request fails at once, and not as transient."""
    url = f"{BASE}/v2/a/manifests/t"
    body = {"errors": [{"code": "UNKNOWN", "message": "unknown error"}, entry]}
    with aioresponses() as mocked:
        mocked.put(url, status=500, payload=body, repeat=True)
        with pytest.raises(RegistryError) as caught:
            await client.put_manifest("a", "t", parse_manifest(RAW, OCI_MANIFEST))
    assert not isinstance(caught.value, TransientError)
    assert client.requests == 1
    assert entry["code"] in str(caught.value)


@pytest.mark.parametrize("status", [400, 403, 404, 405, 409, 413, 415, 422, 501])
async def test_client_errors_are_not_retried(client: RegistryClient, status: int) -> None:
    """Any 4xx but 408 and 429 (and a 501) is sent once."""
    with aioresponses() as mocked:
        mocked.put(f"{BASE}/v2/a/manifests/t", status=status, repeat=True)
        with pytest.raises(RegistryError) as caught:
            await client.put_manifest("a", "t", parse_manifest(RAW, OCI_MANIFEST))
    assert not isinstance(caught.value, TransientError)
    assert client.requests == 1


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (408, ""),
        (429, ""),
        (500, ""),
        (500, '{"errors": [{"code": "UNKNOWN", "message": "unknown error"}]}'),
        (502, NGINX_502),
        (503, ""),
        (504, ""),
        (520, ""),
    ],
)
async def test_timeouts_rate_limits_and_server_errors_are_retried(
    client: RegistryClient, status: int, body: str
) -> None:
    """408, 429 and a 5xx without a client error code are sent again; the retry succeeds."""
    url = f"{BASE}/v2/a/manifests/t"
    with aioresponses() as mocked:
        mocked.put(url, status=status, body=body)
        mocked.put(url, status=201)
        await client.put_manifest("a", "t", parse_manifest(RAW, OCI_MANIFEST))
    assert client.requests == 2


async def test_an_html_error_page_is_summarised_by_its_title(client: RegistryClient) -> None:
    """A proxy's HTML error page shows as its title, not as markup or nothing."""
    url = f"{BASE}/v2/a/blobs/{DIGEST}"
    with aioresponses() as mocked:
        mocked.get(
            url,
            status=502,
            body=NGINX_502,
            headers={"Content-Type": "text/html"},
            repeat=True,
        )
        with pytest.raises(TransientError) as caught:
            async with client.open_blob("a", DIGEST):
                pass
    assert str(caught.value).endswith(
        f"GET blob a@{DIGEST} on r.example.com: HTTP 502: 502 Bad Gateway; it persisted"
    )


async def test_a_413_says_which_limit_to_raise(client: RegistryClient) -> None:
    """A manifest refused for its size is a BodyTooLarge naming client_max_body_size."""
    html = "<html><head><title>413 Request Entity Too Large</title></head></html>"
    with aioresponses() as mocked:
        mocked.put(f"{BASE}/v2/a/manifests/t", status=413, body=html, repeat=True)
        with pytest.raises(BodyTooLarge, match="413 Request Entity Too Large.*client_max_body"):
            await client.put_manifest("a", "t", parse_manifest(RAW, OCI_MANIFEST))
    assert client.requests == 1


# The auth probe: the first request learns the scheme while the others wait

CDN = "https://cdn.example.net/blob"


async def probe_and_waiters(
    client: RegistryClient, mocked: aioresponses, probe: Callable[[], Awaitable[object]]
) -> tuple[asyncio.Task[object], list[object]]:
    """Start ``probe`` first, then three manifest HEADs that must not wait on it forever."""
    for n in range(3):
        mocked.head(f"{BASE}/v2/a/manifests/t{n}", status=404)
    first: asyncio.Task[object] = asyncio.ensure_future(probe())
    await asyncio.sleep(0)  # the probe claims its role before the others ask for a header
    waiters = [asyncio.ensure_future(client.resolve_manifest("a", f"t{n}")) for n in range(3)]
    # A regression hangs here: fail after a timeout instead.
    done: list[object] = list(
        await asyncio.wait_for(asyncio.gather(*waiters, return_exceptions=True), 5)
    )
    return first, done


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("refused redirect", UnsafeRedirect),
        ("too many redirects", RegistryError),
        ("401 from another origin", AuthError),
        ("timeout", TransientError),
    ],
)
async def test_any_end_of_the_auth_probe_releases_its_waiters(
    client: RegistryClient, case: str, expected: type[Exception]
) -> None:
    """However the first request ends, the requests queued behind it go ahead."""
    url = f"{BASE}/v2/a/blobs/{DIGEST}"
    with aioresponses() as mocked:
        if case == "refused redirect":
            mocked.get(url, status=302, headers={"Location": "http://cdn.example.net/x?sig=S"})
        elif case == "too many redirects":
            mocked.get(url, status=302, headers={"Location": url}, repeat=True)
        elif case == "401 from another origin":
            mocked.get(url, status=307, headers={"Location": CDN})
            mocked.get(CDN, status=401)
        else:
            mocked.get(url, exception=TimeoutError(), repeat=True)

        async def probe() -> None:
            async with client.open_blob("a", DIGEST):
                pass

        first, done = await probe_and_waiters(client, mocked, probe)
        with pytest.raises(expected):
            await asyncio.wait_for(first, 5)
    assert done == [None, None, None]


async def test_a_cancelled_auth_probe_releases_its_waiters(client: RegistryClient) -> None:
    """Cancelling the first request (SIGTERM, a sibling's failure) lets the others go ahead."""
    url = f"{BASE}/v2/a/blobs/{DIGEST}"
    never = asyncio.Event()

    async def hang(*_: object, **__: object) -> None:
        await never.wait()

    with aioresponses() as mocked:
        mocked.get(url, callback=hang)

        async def probe() -> None:
            async with client.open_blob("a", DIGEST):
                pass

        first: asyncio.Task[None] = asyncio.ensure_future(probe())
        await asyncio.sleep(0)
        for n in range(3):
            mocked.head(f"{BASE}/v2/a/manifests/t{n}", status=404)
        waiters = [asyncio.ensure_future(client.resolve_manifest("a", f"t{n}")) for n in range(3)]
        await asyncio.sleep(0.05)
        assert not any(w.done() for w in waiters)  # they really wait on the probe
        first.cancel()
        done = await asyncio.wait_for(asyncio.gather(*waiters), 5)
    assert done == [None, None, None]
    assert first.cancelled()


# What the registry said, kept on the error (as go-containerregistry's transport.Error)


async def test_an_error_keeps_status_operation_and_every_entry(client: RegistryClient) -> None:
    """Codes come once each, in the registry's order; the entries keep their messages; the
    message text is what it always was."""
    url = f"{BASE}/v2/a/manifests/{DIGEST}"
    with aioresponses() as mocked:
        mocked.put(url, status=500, payload=DISTRIBUTION_500)
        with pytest.raises(RegistryError) as caught:
            await client.put_manifest("a", DIGEST, parse_manifest(RAW, OCI_MANIFEST))
    error = caught.value
    assert (error.status, error.operation) == (500, "PUT manifest")
    assert error.codes == ("UNKNOWN", "MANIFEST_BLOB_UNKNOWN")
    assert error.errors == (
        RegistryDiagnostic("UNKNOWN", "unknown error"),
        RegistryDiagnostic("UNKNOWN", "unknown error"),
        RegistryDiagnostic("MANIFEST_BLOB_UNKNOWN", "blob unknown to registry"),
    )
    assert str(error).startswith(f"PUT manifest a@{DIGEST} on r.example.com: HTTP 500: ")


async def test_not_found_keeps_the_registry_code(client: RegistryClient) -> None:
    """A GET of a missing manifest or blob is NotFound with MANIFEST_UNKNOWN or BLOB_UNKNOWN."""
    manifest = {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}
    blob = {"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown to registry"}]}
    with aioresponses() as mocked:
        mocked.get(f"{BASE}/v2/a/manifests/t", status=404, payload=manifest)
        mocked.get(f"{BASE}/v2/a/blobs/{DIGEST}", status=404, payload=blob)
        with pytest.raises(NotFound) as missing_manifest:
            await client.get_manifest("a", "t")
        with pytest.raises(NotFound) as missing_blob:
            async with client.read_blob("a", DIGEST):
                pass
    assert str(missing_manifest.value) == "manifest r.example.com/a:t not found"
    assert (missing_manifest.value.operation, missing_manifest.value.codes) == (
        "GET manifest",
        ("MANIFEST_UNKNOWN",),
    )
    assert str(missing_blob.value) == f"blob r.example.com/a@{DIGEST} not found"
    assert (missing_blob.value.status, missing_blob.value.operation) == (404, "GET blob")
    assert missing_blob.value.codes == ("BLOB_UNKNOWN",)


async def test_a_persisting_fault_keeps_its_status_or_none(client: RegistryClient) -> None:
    """Retries spent on a 502 keep the 502; on a dropped connection there is no status. A HEAD
    answer has no body, so no codes."""
    url = f"{BASE}/v2/a/blobs/{DIGEST}"
    with aioresponses() as mocked:
        mocked.head(url, status=502, repeat=True)
        with pytest.raises(TransientError) as answered:
            await client.blob_size("a", DIGEST)
    with aioresponses() as mocked:
        mocked.head(url, exception=aiohttp.ServerDisconnectedError(), repeat=True)
        with pytest.raises(TransientError) as dropped:
            await client.blob_size("a", DIGEST)
    assert (answered.value.status, answered.value.operation, answered.value.codes) == (
        502,
        "HEAD blob",
        (),
    )
    assert (dropped.value.status, dropped.value.operation) == (None, "HEAD blob")


async def test_an_upload_error_names_the_upload_step(client: RegistryClient) -> None:
    """A PUT of a blob refused with DIGEST_INVALID is "PUT blob"; a refused upload start is
    "POST blob upload"."""
    uploads = f"{BASE}/v2/a/blobs/uploads/"
    blob = Descriptor("application/octet-stream", "sha256:" + "2" * 64, 3)
    invalid = {"errors": [{"code": "DIGEST_INVALID", "message": "provided digest did not match"}]}
    denied = {"errors": [{"code": "DENIED", "message": "requested access is denied"}]}

    async def body() -> AsyncIterator[bytes]:
        yield b"abc"

    with aioresponses() as mocked:
        mocked.post(uploads, status=202, headers={"Location": "/v2/a/blobs/uploads/u1"})
        mocked.put(f"{uploads}u1?digest={blob.digest}", status=400, payload=invalid)
        mocked.post(uploads, status=403, payload=denied)
        with pytest.raises(RegistryError) as put:
            await client.write_blob("a", blob, body(), None)
        with pytest.raises(AuthError) as start:
            await client.write_blob("a", blob, body(), None)
    assert (put.value.status, put.value.operation, put.value.codes) == (
        400,
        "PUT blob",
        ("DIGEST_INVALID",),
    )
    assert (start.value.status, start.value.operation, start.value.codes) == (
        403,
        "POST blob upload",
        ("DENIED",),
    )


async def test_a_refused_token_request_is_get_token_with_its_codes() -> None:
    """The token service's own refusal: its status, "GET token" and its error codes."""
    realm = "https://auth.example.com/token"
    challenge = f'Bearer realm="{realm}",service="r"'
    refused = {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]}
    async with aiohttp.ClientSession() as session:
        client = RegistryClient(Registry("r.example.com"), session, Credentials("u", "p"), FAST)
        with aioresponses() as mocked:
            mocked.get(
                f"{BASE}/v2/a/tags/list?n=1000", status=401, headers={"WWW-Authenticate": challenge}
            )
            mocked.get(
                f"{realm}?scope=repository%3Aa%3Apull&service=r", status=401, payload=refused
            )
            with pytest.raises(AuthError) as caught:
                await client.list_tags("a")
    error = caught.value
    assert (error.status, error.operation, error.codes) == (401, "GET token", ("UNAUTHORIZED",))
    assert error.errors == (RegistryDiagnostic("UNAUTHORIZED", "bad credentials"),)
    assert str(error).startswith("token service of r.example.com refused the credentials")


async def test_a_refusal_on_the_way_names_the_operation(client: RegistryClient) -> None:
    """Errors raised before any answer is mapped (a next page on another origin, a challenge
    without a realm) name the operation they interrupted."""
    with aioresponses() as mocked:
        mocked.get(
            f"{BASE}/v2/a/tags/list?n=1000",
            payload={"tags": ["1"]},
            headers={"Link": '<https://elsewhere.example.com/v2/a/tags/list?last=1>; rel="next"'},
        )
        with pytest.raises(UnsafeRedirect) as paginated:
            await client.list_tags("a")
        mocked.head(
            f"{BASE}/v2/a/manifests/t",
            status=401,
            headers={"WWW-Authenticate": 'Bearer service="r"'},
        )
        with pytest.raises(AuthError) as challenged:
            await client.resolve_manifest("a", "t")
    assert paginated.value.operation == "GET tags"
    assert challenged.value.operation == "HEAD manifest"


async def test_kept_messages_are_redacted(client: RegistryClient) -> None:
    """An entry's message keeps no signed-URL query string, like the message text."""
    said = {"errors": [{"code": "DENIED", "message": "see https://cdn.example.com/x?sig=SECRET"}]}
    with aioresponses() as mocked:
        mocked.put(f"{BASE}/v2/a/manifests/t", status=400, payload=said)
        with pytest.raises(RegistryError) as caught:
            await client.put_manifest("a", "t", parse_manifest(RAW, OCI_MANIFEST))
    assert caught.value.codes == ("DENIED",)
    assert "SECRET" not in caught.value.errors[0].message
    assert "SECRET" not in str(caught.value)
