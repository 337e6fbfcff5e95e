"""Challenges, docker config.json credentials, and the token flow."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import stat
from pathlib import Path

import aiohttp
import pytest
from aioresponses import CallbackResult, aioresponses

from github_org_backup.errors import AuthError, UsageError
from github_org_backup.model.reference import Registry
from github_org_backup.stores.registry.auth import Authenticator, parse_challenges
from github_org_backup.stores.registry.credentials import Credentials, CredentialStore

CHALLENGES = [
    (
        'Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull"',
        [
            (
                "bearer",
                {
                    "realm": "https://ghcr.io/token",
                    "service": "ghcr.io",
                    "scope": "repository:a/b:pull",
                },
            )
        ],
    ),
    ('Basic realm="Registry Realm"', [("basic", {"realm": "Registry Realm"})]),
    (
        'Bearer realm="https://r/t",scope="repository:a:pull,push repository:b:pull"',
        [("bearer", {"realm": "https://r/t", "scope": "repository:a:pull,push repository:b:pull"})],
    ),
    (
        'Basic realm="x", Bearer realm="y\\"z",error="invalid_token"',
        [("basic", {"realm": "x"}), ("bearer", {"realm": 'y"z', "error": "invalid_token"})],
    ),
    ("bearer realm=https://r/t", [("bearer", {"realm": "https://r/t"})]),
    ("", []),
]


@pytest.mark.parametrize(("header", "expected"), CHALLENGES)
def test_parse_challenges(header: str, expected: list[tuple[str, dict[str, str]]]) -> None:
    """Schemes are lower-cased; quoted values keep commas, spaces and escaped quotes."""
    assert [(c.scheme, dict(c.params)) for c in parse_challenges(header)] == expected


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def test_docker_config_auth_username_password_and_identity_token(tmp_path: Path) -> None:
    """config.json entries: auth, username/password, identitytoken, keyed by host or URL."""
    config = {
        "auths": {
            "ghcr.io": {"auth": b64("u1:p1")},
            "https://registry.example.com/v1/": {"username": "u2", "password": "p2"},
            "id.example.com": {"auth": b64("u3:"), "identitytoken": "refresh"},
        }
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    store = CredentialStore.from_docker_config(path)
    assert await store.lookup("ghcr.io") == Credentials("u1", "p1")
    assert await store.lookup("registry.example.com") == Credentials("u2", "p2")
    assert await store.lookup("id.example.com") == Credentials("u3", identity_token="refresh")
    assert not (await store.lookup("other.example.com")).present
    assert "p1" not in repr(await store.lookup("ghcr.io"))


async def test_explicit_credentials_win(tmp_path: Path) -> None:
    """Credentials from the environment take precedence over config.json."""
    store = CredentialStore(
        {"auths": {"b.io": {"auth": b64("a:b")}}}, explicit={"b.io": Credentials("env", "pw")}
    )
    assert await store.lookup("b.io") == Credentials("env", "pw")


async def test_credential_helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """credHelpers run docker-credential-NAME get with the host on stdin."""
    helper = tmp_path / "docker-credential-fake"
    helper.write_text(
        '#!/bin/sh\nread host\necho "{\\"Username\\": \\"h-$host\\", \\"Secret\\": \\"s\\"}"\n'
    )
    helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    store = CredentialStore({"credHelpers": {"q.io": "fake"}})
    assert await store.lookup("q.io") == Credentials("h-q.io", "s")
    missing = CredentialStore({"credsStore": "absent"})
    with pytest.raises(UsageError, match="docker-credential-absent"):
        await missing.lookup("q.io")


async def test_credential_helper_runs_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a credential helper runs, other tasks go on: here the helper answers only once
    another task has created the file it waits for (a blocking call would wait in vain)."""
    go = tmp_path / "go"
    helper = tmp_path / "docker-credential-slow"
    helper.write_text(
        f"#!/bin/sh\nfor i in $(seq 100); do [ -e {go} ] && break; sleep 0.05; done\n"
        f'[ -e {go} ] || exit 1\necho \'{{"Username": "u", "Secret": "s"}}\'\n'
    )
    helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    store = CredentialStore({"credsStore": "slow"})
    lookup = asyncio.create_task(store.lookup("q.io"))
    await asyncio.sleep(0)
    go.touch()
    assert await lookup == Credentials("u", "s")


def test_malformed_config_is_a_usage_error(tmp_path: Path) -> None:
    """A broken config.json stops the run with a message naming the file."""
    path = tmp_path / "config.json"
    path.write_text("{")
    with pytest.raises(UsageError, match="config.json"):
        CredentialStore.from_docker_config(path)


REALM = "https://auth.example.com/token"


async def test_bearer_flow_fetches_once_per_scope_with_basic_credentials() -> None:
    """A challenge triggers one token fetch with Basic credentials; the token is cached."""
    async with aiohttp.ClientSession() as session:
        auth = Authenticator(Registry("r.example.com"), Credentials("u", "pat"), session)
        with aioresponses() as mocked:
            mocked.get(f"{REALM}?scope=repository%3Aa%3Apull&service=r", payload={"token": "T1"})
            await auth.challenge(f'Bearer realm="{REALM}",service="r"', ["repository:a:pull"], None)
            assert await auth.header(["repository:a:pull"]) == "Bearer T1"
            assert await auth.header(["repository:a:pull"]) == "Bearer T1"
            (call,) = [c for calls in mocked.requests.values() for c in calls]
            assert call.kwargs["headers"]["Authorization"] == "Basic " + b64("u:pat")
        assert auth.token_fetches == 1


async def test_bearer_refresh_on_401_with_the_cached_token() -> None:
    """A 401 for the token just sent fetches a fresh one."""
    async with aiohttp.ClientSession() as session:
        auth = Authenticator(Registry("r.example.com"), None, session)
        challenge = f'Bearer realm="{REALM}",service="r"'
        url = f"{REALM}?scope=repository%3Aa%3Apull&service=r"
        with aioresponses() as mocked:
            mocked.get(url, payload={"token": "T1"})
            mocked.get(url, payload={"access_token": "T2"})
            await auth.challenge(challenge, ["repository:a:pull"], None)
            await auth.challenge(challenge, ["repository:a:pull"], "Bearer T1")
            assert await auth.header(["repository:a:pull"]) == "Bearer T2"


async def test_refused_token_request_says_what_to_check() -> None:
    """A 401 from the realm is an AuthError that names the host, never the secret."""
    async with aiohttp.ClientSession() as session:
        auth = Authenticator(Registry("r.example.com"), Credentials("u", "s3cret"), session)
        with aioresponses() as mocked:
            mocked.get(f"{REALM}?scope=repository%3Aa%3Apull&service=r", status=401)
            with pytest.raises(AuthError, match="r.example.com") as caught:
                await auth.challenge(
                    f'Bearer realm="{REALM}",service="r"', ["repository:a:pull"], None
                )
        assert "s3cret" not in str(caught.value)


async def test_plain_http_realm_is_refused_for_an_https_registry() -> None:
    """Credentials are never sent to an http realm named by an https registry."""
    async with aiohttp.ClientSession() as session:
        auth = Authenticator(Registry("r.example.com"), Credentials("u", "p"), session)
        with pytest.raises(AuthError, match="plain http"):
            await auth.challenge('Bearer realm="http://evil.example.com/t"', ["x"], None)


async def test_basic_challenge_without_credentials_says_how_to_log_in() -> None:
    """A Basic challenge with no configured credentials tells the user to add them."""
    async with aiohttp.ClientSession() as session:
        auth = Authenticator(Registry("r.example.com"), None, session)
        with pytest.raises(AuthError, match="docker config.json"):
            await auth.challenge('Basic realm="r"', [], None)
        auth = Authenticator(Registry("r.example.com"), Credentials("u", "p"), session)
        await auth.challenge('Basic realm="r"', [], None)
        assert await auth.header([]) == "Basic " + b64("u:p")


async def test_waiters_fetch_their_tokens_while_the_probe_fetches_its_own() -> None:
    """Once the probe's challenge names the realm, the requests that waited on it fetch their
    own scopes' tokens at once, alongside the probe's: not one after the other."""
    in_flight, peak = 0, 0

    async def slow_token(url: object, **kwargs: object) -> CallbackResult:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        return CallbackResult(payload={"token": "T"})

    async with aiohttp.ClientSession() as session:
        auth = Authenticator(Registry("r.example.com"), None, session)
        with aioresponses() as mocked:
            mocked.get(re.compile(re.escape(REALM) + r"\?.*"), callback=slow_token, repeat=True)
            assert auth.claim_probe()
            waiters = [
                asyncio.create_task(auth.header([f"repository:{name}:pull"])) for name in "bcd"
            ]
            await asyncio.sleep(0)
            challenge = f'Bearer realm="{REALM}",service="r"'
            await auth.challenge(challenge, ["repository:a:pull"], None)
            assert await asyncio.gather(*waiters) == ["Bearer T"] * 3
    assert auth.token_fetches == 4
    assert peak == 4
