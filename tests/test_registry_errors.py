"""A real registry's refusals keep what it said: status, operation and distribution codes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from github_org_backup.base.retry import RetryPolicy
from github_org_backup.errors import AuthError, NotFound, RegistryError
from github_org_backup.model.oci import OCI_MANIFEST, Descriptor, parse_manifest
from github_org_backup.model.reference import Registry
from github_org_backup.stores.registry import RegistryClient
from github_org_backup.stores.registry.credentials import Credentials
from tests.conftest import LiveRegistry

pytestmark = pytest.mark.integration

FAST = RetryPolicy(attempts=2, base_delay_s=0.01, max_delay_s=0.02)
MISSING = "sha256:" + hashlib.sha256(b"never pushed").hexdigest()


def _client(session: aiohttp.ClientSession, live: LiveRegistry, password: str) -> RegistryClient:
    registry = Registry(live.host, scheme="http")
    return RegistryClient(registry, session, Credentials(live.username, password), FAST)


async def _bytes(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_distribution_refusals_keep_their_codes(
    destination: LiveRegistry, namespace: str
) -> None:
    """docker-registry's own answers: MANIFEST_UNKNOWN, BLOB_UNKNOWN, MANIFEST_BLOB_UNKNOWN and
    DIGEST_INVALID, each with the status and the operation it answered."""
    name = f"{namespace}/errors"
    manifest = parse_manifest(
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.empty.v1+json",
                    "digest": MISSING,
                    "size": 12,
                },
                "layers": [],
            }
        ).encode(),
        OCI_MANIFEST,
    )
    async with aiohttp.ClientSession() as session:
        client = _client(session, destination, destination.password)
        with pytest.raises(NotFound) as no_manifest:
            await client.get_manifest(name, "absent")
        with pytest.raises(NotFound) as no_blob:
            async with client.read_blob(name, MISSING):
                pass
        with pytest.raises(RegistryError) as blobless:
            await client.put_manifest(name, "t", manifest)
        wrong = Descriptor("application/octet-stream", MISSING, 3)
        with pytest.raises(RegistryError) as mislabelled:
            await client.write_blob(name, wrong, _bytes(b"abc"), None)
    found = [
        (e.value.status, e.value.operation, e.value.codes)
        for e in (no_manifest, no_blob, blobless, mislabelled)
    ]
    assert found == [
        (404, "GET manifest", ("MANIFEST_UNKNOWN",)),
        (404, "GET blob", ("BLOB_UNKNOWN",)),
        (400, "PUT manifest", ("MANIFEST_BLOB_UNKNOWN",)),
        (400, "PUT blob", ("DIGEST_INVALID",)),
    ]
    assert str(no_manifest.value) == f"manifest http://{destination.host}/{name}:absent not found"
    assert all(e.value.errors and e.value.errors[0].message for e in (blobless, mislabelled))


async def test_refused_credentials_keep_their_codes(
    destination: LiveRegistry, source: LiveRegistry, namespace: str
) -> None:
    """A wrong password: Basic auth answers the GET itself with 401 UNAUTHORIZED; a token
    realm refuses the token request ("GET token")."""
    name = f"{namespace}/errors"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(AuthError) as basic:
            await _client(session, destination, "wrong").list_tags(name)
        with pytest.raises(AuthError) as token:
            await _client(session, source, "wrong").list_tags(name)
    assert (basic.value.status, basic.value.operation, basic.value.codes) == (
        401,
        "GET tags",
        ("UNAUTHORIZED",),
    )
    assert (token.value.status, token.value.operation, token.value.codes) == (
        401,
        "GET token",
        ("UNAUTHORIZED",),
    )
    assert "wrong" not in str(basic.value) + str(token.value)
