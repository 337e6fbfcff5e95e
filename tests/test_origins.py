"""Where a registry's answers may send the client: token realms and redirects, as tables."""

from __future__ import annotations

import aiohttp
import pytest
import yarl
from aioresponses import aioresponses

from github_org_backup.errors import UnsafeRedirect
from github_org_backup.model.reference import Registry
from github_org_backup.stores.registry import RegistryClient
from github_org_backup.stores.registry.origins import Trust, check_redirect, realm_refusal

DIGEST = "sha256:" + "a" * 64

REALMS = [
    # (registry URL, realm, allowed, credentials may go)
    ("https://ghcr.io", "https://ghcr.io/token", (), True),
    ("https://registry.example.com:5000", "https://registry.example.com:5001/auth", (), True),
    ("https://registry-1.docker.io", "https://auth.docker.io/token", (), True),
    ("https://registry.gitlab.com", "https://gitlab.com/jwt/auth", (), True),
    ("https://registry.example.co.uk", "https://auth.example.co.uk/t", (), True),
    ("http://127.0.0.1:5000", "http://127.0.0.1:5001/token", (), True),
    ("https://ghcr.io", "https://evil.example.com/token", (), False),
    ("https://registry.example.co.uk", "https://evil.co.uk/t", (), False),  # public suffix
    ("https://ghcr.io", "http://ghcr.io/token", (), False),  # never down to http
    ("https://ghcr.io", "ftp://ghcr.io/token", (), False),
    ("http://127.0.0.1:5000", "http://localhost:5001/token", (), False),
    ("http://10.0.0.1:5000", "http://10.0.0.2/token", (), False),  # IPs: the same one only
    ("https://ghcr.io", "https://auth.corp.example/t", ("auth.corp.example",), True),
    ("https://ghcr.io", "https://auth.corp.example:8443/t", ("auth.corp.example:8443",), True),
    ("https://ghcr.io", "https://auth.corp.example:9/t", ("auth.corp.example:8443",), False),
]


@pytest.mark.parametrize(("registry", "realm", "allowed", "may"), REALMS)
def test_realm_refusal(registry: str, realm: str, allowed: tuple[str, ...], may: bool) -> None:
    """Credentials go to the registry's host, its registrable domain over https, or an
    allowed host; to nothing else."""
    refusal = realm_refusal(yarl.URL(registry), yarl.URL(realm), frozenset(allowed))
    assert (refusal is None) == may, refusal


def test_a_refused_realm_names_the_host_and_the_flag() -> None:
    """The refusal says which host and how to allow it."""
    refusal = realm_refusal(yarl.URL("https://ghcr.io"), yarl.URL("https://evil.example.com/t"))
    assert refusal is not None
    assert "evil.example.com" in refusal and "--allow-token-realm evil.example.com" in refusal


REDIRECTS = [
    # (registry, target, internal_ok, followed)
    ("https://ghcr.io", "https://pkg-containers.githubusercontent.com/x?sig=1", False, True),
    ("https://ghcr.io", "https://169.254.169.254/latest/meta-data/", False, False),
    ("https://ghcr.io", "https://127.0.0.1:8080/x", False, False),
    ("https://ghcr.io", "https://[::1]/x", False, False),
    ("https://ghcr.io", "https://10.1.2.3/x", False, False),
    ("https://ghcr.io", "https://192.168.0.10/x", False, False),
    ("https://ghcr.io", "https://localhost/x", False, False),
    ("https://ghcr.io", "https://0.0.0.0/x", False, False),
    ("https://ghcr.io", "https://2852039166/latest/meta-data/", False, False),  # 169.254.169.254
    ("https://ghcr.io", "https://0xa9.0xfe.0xa9.0xfe/", False, False),
    ("https://ghcr.io", "https://127.1/x", False, False),
    ("https://ghcr.io", "https://0177.0.0.1/x", False, False),
    ("https://ghcr.io", "https://[::ffff:127.0.0.1]/x", False, False),
    ("http://10.0.0.5:5000", "http://[::ffff:169.254.169.254]/", False, False),
    ("https://ghcr.io", "https://cafe.example/x", False, True),  # a name, not a number
    ("https://ghcr.io", "https://10.1.2.3/x", True, True),  # --allow-internal-redirects
    ("https://ghcr.io", "https://169.254.169.254/", True, False),  # metadata: even then
    ("http://127.0.0.1:5000", "http://127.0.0.1:6000/cdn", False, True),  # a loopback lab
    ("http://10.0.0.5:5000", "http://10.0.0.6/cdn", False, True),  # a private network
    ("http://10.0.0.5:5000", "http://169.254.169.254/", False, False),  # metadata: never
    ("https://ghcr.io", "http://cdn.example.com/x", False, False),  # https down to http
    ("https://ghcr.io", "file:///etc/passwd", False, False),
]


@pytest.mark.parametrize(("registry", "target", "internal_ok", "followed"), REDIRECTS)
def test_redirect_policy(registry: str, target: str, internal_ok: bool, followed: bool) -> None:
    """A public registry never sends the client into internal address space."""
    source = yarl.URL(registry) / "v2/app/blobs" / DIGEST
    try:
        check_redirect(source, yarl.URL(target), yarl.URL(registry), internal_ok=internal_ok)
    except UnsafeRedirect:
        assert not followed
    else:
        assert followed


async def test_a_blob_redirect_to_cloud_metadata_is_not_followed() -> None:
    """The 307 to 169.254.169.254 fails the read; no request goes there."""
    registry = Registry("registry.example.com")
    metadata = "https://169.254.169.254/latest/meta-data/iam/security-credentials/"
    with aioresponses() as mocked:
        mocked.get(
            f"https://registry.example.com/v2/app/blobs/{DIGEST}",
            status=307,
            headers={"Location": metadata},
        )
        async with aiohttp.ClientSession() as session:
            client = RegistryClient(registry, session, None, trust=Trust())
            with pytest.raises(UnsafeRedirect, match="169.254.169.254 is a link-local"):
                async with client.read_blob("app", DIGEST):
                    pass
        requested = [str(url) for _method, url in mocked.requests]
    assert metadata not in requested
    assert len(requested) == 1


async def test_an_anonymous_token_request_never_goes_into_the_internal_network() -> None:
    """Without credentials a realm on another host may be asked anonymously, but not one on
    an internal address: a public registry cannot aim the client at the metadata service."""
    from github_org_backup.errors import AuthError
    from github_org_backup.stores.registry.auth import Authenticator

    realm = "http://169.254.169.254/latest/meta-data/"
    with aioresponses() as mocked:
        async with aiohttp.ClientSession() as session:
            auth = Authenticator(Registry("registry.example.com"), None, session)
            with pytest.raises(AuthError, match="169.254.169.254 is a link-local address"):
                await auth.challenge(f'Bearer realm="{realm}"', [], None)
        assert mocked.requests == {}
