"""Registry authentication: challenges, Bearer tokens per scope, Basic, docker config.json.

Knows nothing about copying. The registry client asks an Authenticator for the header to send
with a set of scopes, and hands it any 401 challenge it gets back.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yarl

from backup.errors import AuthError, UsageError
from backup.reference import Registry

_CHALLENGE_TOKEN = re.compile(
    r'[\s,]*([A-Za-z][A-Za-z0-9_.-]*)(?:\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*))?'
)
_TOKEN_SAFETY_MARGIN_S = 10.0
_DEFAULT_TOKEN_LIFETIME_S = 60.0


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower case: "bearer" or "basic"
    params: Mapping[str, str]


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a WWW-Authenticate header into its challenges (quoted values may hold commas)."""
    found: list[tuple[str, dict[str, str]]] = []
    position = 0
    while (match := _CHALLENGE_TOKEN.match(header, position)) and match.end() > position:
        position = match.end()
        name, value = match.group(1), match.group(2)
        if value is None:  # a bare token starts the next challenge
            found.append((name.lower(), {}))
        elif found:
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            found[-1][1][name.lower()] = value
    return [Challenge(scheme, params) for scheme, params in found]


@dataclass(frozen=True)
class Credentials:
    """A username and password, or an identity (refresh) token. repr never shows secrets."""

    username: str = ""
    password: str = ""
    identity_token: str = ""

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, secret=<redacted>)"

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def _host_key(server: str) -> str:
    """Normalise a config.json key (``https://host/v1/``, ``host``) to ``host[:port]``."""
    if "://" in server:
        server = server.split("://", 1)[1]
    return server.split("/", 1)[0].lower()


class CredentialStore:
    """Credentials by registry host: explicit entries first, then docker config.json."""

    def __init__(
        self,
        config: Mapping[str, Any] | None = None,
        explicit: Mapping[str, Credentials] | None = None,
    ) -> None:
        self._config = config or {}
        self._explicit = {_host_key(k): v for k, v in (explicit or {}).items()}
        self._auths = {_host_key(k): v for k, v in (self._config.get("auths") or {}).items()}
        self._helpers = {
            _host_key(k): v for k, v in (self._config.get("credHelpers") or {}).items()
        }

    @classmethod
    def from_docker_config(
        cls, path: Path | None = None, explicit: Mapping[str, Credentials] | None = None
    ) -> CredentialStore:
        """Load ``$DOCKER_CONFIG/config.json`` (default ``~/.docker/config.json``) if present."""
        if path is None:
            root = os.environ.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
            path = Path(root) / "config.json"
        if not path.is_file():
            return cls({}, explicit)
        try:
            config = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read docker config {path}: {type(exc).__name__}") from None
        if not isinstance(config, dict):
            raise UsageError(f"docker config {path} is not a JSON object")
        return cls(config, explicit)

    def lookup(self, host: str) -> Credentials | None:
        key = _host_key(host)
        if key in self._explicit:
            return self._explicit[key]
        helper = self._helpers.get(key) or self._config.get("credsStore")
        entry = self._auths.get(key)
        if entry:
            found = _from_auth_entry(entry, key)
            if found:
                return found
        if helper:
            return _from_helper(str(helper), key)
        return None


def _from_auth_entry(entry: Mapping[str, Any], host: str) -> Credentials | None:
    if token := entry.get("identitytoken"):
        username = entry.get("username") or ""
        if not username and entry.get("auth"):
            username = _decode_auth(str(entry["auth"]), host)[0]
        return Credentials(username=username, identity_token=str(token))
    if auth := entry.get("auth"):
        username, password = _decode_auth(str(auth), host)
        return Credentials(username, password)
    if entry.get("username"):
        return Credentials(str(entry["username"]), str(entry.get("password", "")))
    return None


def _decode_auth(value: str, host: str) -> tuple[str, str]:
    try:
        username, sep, password = base64.b64decode(value).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        sep = ""
    if not sep:
        raise UsageError(
            f"docker config entry for {host} has an 'auth' that is not base64(user:pass)"
        )
    return username, password


def _from_helper(helper: str, host: str) -> Credentials | None:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", helper):
        raise UsageError(f"invalid credential helper name {helper!r} in docker config")
    try:
        result = subprocess.run(
            [f"docker-credential-{helper}", "get"],
            input=host,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except FileNotFoundError:
        raise UsageError(
            f"docker config names credential helper {helper!r} for {host}, "
            f"but docker-credential-{helper} is not on PATH"
        ) from None
    if result.returncode != 0:
        return None  # "credentials not found": fall back to anonymous
    try:
        data = json.loads(result.stdout)
    except ValueError:
        raise UsageError(f"docker-credential-{helper} returned invalid JSON for {host}") from None
    username, secret = str(data.get("Username", "")), str(data.get("Secret", ""))
    if username == "<token>":
        return Credentials(identity_token=secret)
    return Credentials(username, secret)


def repository_scope(name: str, actions: str) -> str:
    return f"repository:{name}:{actions}"


@dataclass
class _Token:
    value: str
    expires_at: float


class Authenticator:
    """Authorization for one registry: learns its scheme from challenges, caches tokens by scope."""

    def __init__(
        self, registry: Registry, credentials: Credentials | None, session: aiohttp.ClientSession
    ) -> None:
        self._registry = registry
        self._credentials = credentials
        self._session = session
        self._scheme: str | None = None
        self._bearer: Mapping[str, str] = {}
        self._tokens: dict[str, _Token] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._probing = False
        self._settled = asyncio.Event()
        self.token_fetches = 0

    @staticmethod
    def _key(scopes: Iterable[str]) -> str:
        return " ".join(sorted(set(scopes)))

    async def header(self, scopes: Iterable[str]) -> str | None:
        """The Authorization value for these scopes, fetching a token if the realm is known.

        Until the registry's scheme is known, one request goes ahead as the probe and the
        others wait for its answer, rather than all collecting the same 401.
        """
        if self.claim_probe():
            return None
        if self._scheme is None and not self._settled.is_set():
            await self._settled.wait()
        if self._scheme == "basic" and self._credentials:
            return self._credentials.basic_header()
        if self._scheme != "bearer":
            return None
        key = self._key(scopes)
        token = self._tokens.get(key)
        if token is None or token.expires_at <= time.monotonic():
            token = await self._fetch_locked(key, stale=token)
        return f"Bearer {token.value}"

    def claim_probe(self) -> bool:
        """True for the one request that goes first, without credentials, to learn the scheme.

        Its sender must call ``settle()`` however the request ends (a ``finally``), or every
        request waiting in ``header()`` waits forever.
        """
        if self._scheme is None and not self._settled.is_set() and not self._probing:
            self._probing = True
            return True
        return False

    def settle(self) -> None:
        """The probe got an answer (or failed): waiting requests go ahead with what is known."""
        self._probing = False
        self._settled.set()

    async def challenge(self, header: str | None, scopes: Iterable[str], sent: str | None) -> None:
        """Handle a 401: adopt the challenge's scheme and get a fresh token unless one arrived."""
        try:
            await self._adopt(header, scopes, sent)
        finally:
            self.settle()

    async def _adopt(self, header: str | None, scopes: Iterable[str], sent: str | None) -> None:
        challenges = parse_challenges(header or "")
        by_scheme = {c.scheme: c for c in challenges}
        if bearer := by_scheme.get("bearer"):
            if "realm" not in bearer.params:
                raise AuthError(f"{self._registry} sent a Bearer challenge without a realm")
            self._scheme, self._bearer = "bearer", bearer.params
            wanted = set(scopes) | set(bearer.params.get("scope", "").split())
            key = self._key(s for s in wanted if s)
            cached = self._tokens.get(key)
            stale = cached if cached and sent == f"Bearer {cached.value}" else None
            if cached is None or stale is not None:
                await self._fetch_locked(key, stale=stale)
            # Remember the token under the caller's own scope set too, for its retry.
            self._tokens[self._key(scopes)] = self._tokens[key]
            return
        if "basic" in by_scheme:
            if self._credentials is None or not self._credentials.password:
                raise AuthError(
                    f"{self._registry} requires a username and password: add them to "
                    "docker config.json (docker login) or the environment",
                    status=401,
                )
            # Sent and still refused: the caller retries once, then reports the 401.
            self._scheme = "basic"
            return
        raise AuthError(f"{self._registry} answered 401 without a usable challenge", status=401)

    async def _fetch_locked(self, key: str, stale: _Token | None) -> _Token:
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            current = self._tokens.get(key)
            if (
                current is not None
                and current is not stale
                and current.expires_at > time.monotonic()
            ):
                return current
            token = await self._fetch(key.split(" ") if key else [])
            self._tokens[key] = token
            return token

    async def _fetch(self, scopes: list[str]) -> _Token:
        realm = yarl.URL(self._bearer["realm"])
        if realm.scheme not in ("http", "https"):
            raise AuthError(f"{self._registry} named a token realm that is not http(s)")
        if realm.scheme == "http" and not self._registry.plain_http:
            raise AuthError(
                f"{self._registry} named a plain-http token realm; refusing to send credentials"
            )
        params: list[tuple[str, str]] = []
        if service := self._bearer.get("service"):
            params.append(("service", service))
        params += [("scope", s) for s in scopes]
        self.token_fetches += 1
        creds = self._credentials
        try:
            if creds and creds.identity_token:
                form = dict(params[:1]) | {
                    "grant_type": "refresh_token",
                    "refresh_token": creds.identity_token,
                    "client_id": "github-org-backup",
                    "scope": " ".join(scopes),
                }
                request = self._session.post(realm, data=form)
            else:
                headers = (
                    {"Authorization": creds.basic_header()} if creds and creds.password else {}
                )
                request = self._session.get(realm.update_query(params), headers=headers)
            async with request as response:
                if response.status in (401, 403):
                    raise AuthError(
                        f"token service of {self._registry} refused the credentials "
                        f"(HTTP {response.status}): check the username and token "
                        f"for {self._registry.host}",
                        status=response.status,
                    )
                if response.status != 200:
                    raise AuthError(
                        f"token service of {self._registry} answered HTTP {response.status}",
                        status=response.status,
                    )
                body = await response.json(content_type=None)
        except aiohttp.ClientError as exc:
            raise AuthError(
                f"cannot reach the token service of {self._registry}: {type(exc).__name__}"
            ) from None
        value = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(value, str) or not value:
            raise AuthError(f"token service of {self._registry} returned no token")
        lifetime = body.get("expires_in") or _DEFAULT_TOKEN_LIFETIME_S
        lifetime = max(float(lifetime) - _TOKEN_SAFETY_MARGIN_S, 1.0)
        return _Token(value, time.monotonic() + lifetime)
