"""A connection whose request body failed is closed, never reused: the server would read the
next request as the rest of the broken one (the fault proxy then logs BadHttpMethod)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from github_org_backup.base.retry import RetryPolicy
from github_org_backup.errors import BackupError
from github_org_backup.model.oci import Descriptor
from github_org_backup.model.reference import Registry
from github_org_backup.stores.registry import RegistryClient
from tests.harness.faultproxy import FaultProxy, Rule
from tests.harness.registry import RegistryProcess

pytestmark = pytest.mark.integration

ONE_TRY = RetryPolicy(attempts=1)
UPLOADS = "/blobs/uploads/"


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultProxy]:
    """The fault proxy in front of a real, unauthenticated docker-registry."""
    registry = RegistryProcess(tmp_path_factory.mktemp("connections")).start()
    proxy = FaultProxy(registry.url).start()
    yield proxy
    proxy.stop()
    registry.stop()


async def pieces(data: bytes, pause_s: float) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 64 * 1024):
        await asyncio.sleep(pause_s)
        yield data[start : start + 64 * 1024]


def blob(data: bytes, declared: int | None = None) -> Descriptor:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    return Descriptor(
        "application/octet-stream", digest, len(data) if declared is None else declared
    )


CASES = [
    # The proxy answers 502 while the body is still being sent: aiohttp cancels the writer.
    ("answered mid-body", [Rule("502", ("PUT",), UPLOADS, limit=1)], 400_000, None, 0.02),
    # A stream that ends short of its Content-Length, answered early.
    ("body shorter than declared", [Rule("502", ("PUT",), UPLOADS, limit=1)], 100_000, 300_000, 0),
    # The flake of the mixed-fault scenario: the connection resets part-way through the PUT;
    # aiohttp sends the PUT again by itself (PUT is idempotent to it) with what is left of
    # the stream, under the full Content-Length; that resend is answered early (502).
    (
        "reset mid-body, then aiohttp's own resend",
        [Rule("reset-upload", ("PUT",), UPLOADS, limit=1), Rule("502", ("PUT",), UPLOADS, limit=1)],
        400_000,
        None,
        0.005,
    ),
]


@pytest.mark.parametrize(
    ("case", "rules", "size", "declared", "pause_s"), CASES, ids=[c[0] for c in CASES]
)
async def test_no_connection_is_reused_after_a_failed_request_body(
    proxy: FaultProxy,
    case: str,
    rules: list[Rule],
    size: int,
    declared: int | None,
    pause_s: float,
) -> None:
    """A streamed PUT that failed is sent once, its connection is not pooled, and the next
    request to the registry parses and is answered."""
    proxy.set_rules(rules, 0)
    data = (bytes(range(256)) * (size // 256 + 1))[:size]
    timeout = aiohttp.ClientTimeout(total=None, sock_read=2)
    connector = aiohttp.TCPConnector(limit_per_host=1)  # one connection: reuse is certain
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        client = RegistryClient(Registry(proxy.host, "http"), session, None, ONE_TRY)
        with pytest.raises(BackupError):
            await client.write_blob("conn/a", blob(data, declared), pieces(data, pause_s), None)
        await asyncio.sleep(0.05)  # let a cancelled writer finish its part
        assert await client.blob_size("conn/a", blob(data).digest) is None
    assert [method for method, _, _ in proxy.seen] == ["POST", "PUT", "HEAD"]
    _, put, head = proxy.ports
    assert head != put  # the failed body's connection was not reused
    assert proxy.protocol_errors == []
