"""Registry credentials: docker ``config.json`` (``auths``, ``credHelpers``, ``credsStore``) and
explicit ones from the environment, by registry host.

A credential helper (``docker-credential-<name> get``) is a subprocess: it runs off the event
loop, once per registry, when the registry first asks for credentials. Knows nothing about
tokens or challenges (``auth.py``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from github_org_backup.errors import UsageError

_HELPER_TIMEOUT_S = 30.0


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

    async def lookup(self, host: str) -> Credentials | None:
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
            return await _from_helper(str(helper), key)
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


async def _from_helper(helper: str, host: str) -> Credentials | None:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", helper):
        raise UsageError(f"invalid credential helper name {helper!r} in docker config")
    try:
        process = await asyncio.create_subprocess_exec(
            f"docker-credential-{helper}",
            "get",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError:
        raise UsageError(
            f"docker config names credential helper {helper!r} for {host}, "
            f"but docker-credential-{helper} is not on PATH"
        ) from None
    try:
        stdout, _ = await asyncio.wait_for(
            process.communicate(host.encode()), timeout=_HELPER_TIMEOUT_S
        )
    except TimeoutError:
        process.kill()
        await process.wait()
        raise UsageError(
            f"docker-credential-{helper} gave no answer for {host} in {_HELPER_TIMEOUT_S:.0f} s"
        ) from None
    if process.returncode != 0:
        return None  # "credentials not found": fall back to anonymous
    try:
        data = json.loads(stdout.decode())
    except ValueError:
        raise UsageError(f"docker-credential-{helper} returned invalid JSON for {host}") from None
    username, secret = str(data.get("Username", "")), str(data.get("Secret", ""))
    if username == "<token>":
        return Credentials(identity_token=secret)
    return Credentials(username, secret)


# What a registry client is given: credentials, none, or a way to look them up when needed.
CredentialSource = Credentials | None | Callable[[], Awaitable[Credentials | None]]
