"""Registry credentials by host, in docker's order: explicit ones (from the environment) first,
then docker ``config.json``, where a credential helper for the host (``credHelpers[host]``)
beats ``credsStore``, and either beats ``auths`` (docker's ``cli/config/configfile``).

Every answer names where it came from (``source``), or, when nothing was found, every place
looked in, in order: that is what an error message tells the user, never a secret.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from github_org_backup.errors import UsageError

_HELPER_TIMEOUT_S = 30.0
# What every helper prints, exiting non-zero, for a host it holds nothing for
# (docker-credential-helpers' credentials/error.go): docker then goes on without credentials.
_HELPER_NOT_FOUND = "credentials not found in native keychain"
# Where `docker login` keeps Docker Hub's credentials, whichever of its names is used.
_DOCKER_HUB = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})

ENVIRONMENT = "DEST_USERNAME/DEST_PASSWORD"
"""The source name of the explicit credentials the environment gives the backup's registry."""


@dataclass(frozen=True)
class Credentials:
    """A username and password, an identity (refresh) token or a registry (bearer) token, and
    where they came from. None of them is ``present`` when nothing was found: ``source`` then
    lists where the lookup looked. repr never shows a secret."""

    username: str = ""
    password: str = ""
    identity_token: str = ""
    registry_token: str = ""
    source: str = field(default="", compare=False)

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, secret=<redacted>, source={self.source!r})"

    @property
    def present(self) -> bool:
        return bool(self.password or self.identity_token or self.registry_token)

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def nothing_found(*searched: str) -> Credentials:
    """The answer of a lookup that found nothing, naming where it looked, in order."""
    return Credentials(source="; ".join(searched) or "no credentials given")


def _host_key(server: str) -> str:
    """Normalise a config.json key (``https://host/v1/``, ``host``) to ``host[:port]``."""
    if "://" in server:
        server = server.split("://", 1)[1]
    key = server.split("/", 1)[0].lower()
    return "index.docker.io" if key in _DOCKER_HUB else key


class CredentialStore:
    """Credentials by registry host: explicit entries first, then docker config.json."""

    def __init__(
        self,
        config: Mapping[str, Any] | None = None,
        explicit: Mapping[str, Credentials] | None = None,
        path: Path | None = None,
        *,
        found: bool = True,
    ) -> None:
        self._config = config or {}
        self._where = f"docker config {path}" if path else "docker config"
        self._file_found = found
        self._explicit = {_host_key(k): v for k, v in (explicit or {}).items()}
        self._auths = {_host_key(k): (k, v) for k, v in (self._config.get("auths") or {}).items()}
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
            return cls({}, explicit, path, found=False)
        try:
            config = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read docker config {path}: {type(exc).__name__}") from None
        if not isinstance(config, dict):
            raise UsageError(f"docker config {path} is not a JSON object")
        return cls(config, explicit, path)

    async def lookup(self, host: str) -> Credentials:
        """The credentials for ``host``, or ``nothing_found`` naming every place looked in."""
        key = _host_key(host)
        if key in self._explicit:
            return self._explicit[key]
        searched = [self._explicit_searched(key)]
        if not self._file_found:
            return nothing_found(*searched, f"{self._where}: no such file")
        named, entry = self._auths.get(key, (key, None))
        helper, how = self._helper(key)
        if helper:
            source = f"credential helper docker-credential-{helper} ({how} in {self._where})"
            # docker asks a helper for Docker Hub under its old index URL, as it stored it.
            asked = "https://index.docker.io/v1/" if key == "index.docker.io" else key
            found = await _from_helper(helper, asked, source)
            # docker's native store replaces only the user, password and identity token of
            # the auths entry: a registrytoken there still goes first.
            if entry and (token := entry.get("registrytoken")):
                return Credentials(
                    registry_token=str(token),
                    source=f"{self._where} auths[{named}] registrytoken",
                )
            if found is not None:
                return found
            return nothing_found(
                *searched,
                f"{source}: {_HELPER_NOT_FOUND}",
                f"{self._where} auths[{key}]: not read, as docker reads only the helper "
                "once one serves the host",
            )
        if entry and (found := _from_auth_entry(entry, f"{self._where} auths[{named}]")):
            return found
        return nothing_found(
            *searched,
            f"{self._where}: no credHelpers[{key}], no credsStore, no auths[{key}] entry",
        )

    def _helper(self, key: str) -> tuple[str, str]:
        """The helper serving ``key`` and the config entry naming it, or ("", "")."""
        if helper := self._helpers.get(key):
            return str(helper), f"credHelpers[{key}]"
        if helper := self._config.get("credsStore"):
            return str(helper), "credsStore"
        return "", ""

    def _explicit_searched(self, key: str) -> str:
        """What the explicit credentials were, for a host they do not name."""
        hosts = sorted(h for h, c in self._explicit.items() if c.source == ENVIRONMENT)
        if hosts:
            return f"{ENVIRONMENT}: given for {', '.join(hosts)} only, not for {key}"
        return f"{ENVIRONMENT}: not given for {key}"


def _from_auth_entry(entry: Mapping[str, Any], source: str) -> Credentials | None:
    """An ``auths`` entry as docker reads it: ``auth`` overrides ``username``/``password``; a
    ``registrytoken`` goes first, then an ``identitytoken``, then the password."""
    username, password = str(entry.get("username") or ""), str(entry.get("password") or "")
    if auth := entry.get("auth"):
        username, password = _decode_auth(str(auth), source)
    if token := entry.get("registrytoken"):
        return Credentials(username, registry_token=str(token), source=f"{source} registrytoken")
    if token := entry.get("identitytoken"):
        return Credentials(username, identity_token=str(token), source=f"{source} identitytoken")
    if username:
        return Credentials(username, password, source=source)
    return None


def _decode_auth(value: str, source: str) -> tuple[str, str]:
    try:
        username, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        sep = ""
    if not sep or not username:
        raise UsageError(f"{source}: 'auth' is not base64 of user:password")
    return username, password.strip("\x00")


async def _from_helper(helper: str, host: str, source: str) -> Credentials | None:
    """The helper's answer; None when it holds nothing for ``host`` (its not-found message)."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", helper):
        raise UsageError(f"invalid credential helper name {helper!r} in docker config")
    program = f"docker-credential-{helper}"
    try:
        process = await asyncio.create_subprocess_exec(
            program,
            "get",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError:
        raise UsageError(f"{source} for {host}: {program} is not on PATH") from None
    try:
        stdout, _ = await asyncio.wait_for(
            process.communicate(host.encode()), timeout=_HELPER_TIMEOUT_S
        )
    except TimeoutError:
        process.kill()
        await process.wait()
        raise UsageError(
            f"{program} gave no answer for {host} in {_HELPER_TIMEOUT_S:.0f} s"
        ) from None
    if process.returncode != 0:
        if stdout.decode(errors="replace").strip() == _HELPER_NOT_FOUND:
            return None
        # Its output is not quoted: a broken helper might print a secret.
        raise UsageError(
            f"{program} get failed for {host} (exit status {process.returncode}): run "
            f"`echo {host} | {program} get` to see why, or remove it from the docker config"
        )
    try:
        data = json.loads(stdout.decode())
    except (ValueError, UnicodeDecodeError):
        raise UsageError(f"{program} returned invalid JSON for {host}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{program} returned invalid JSON for {host}")
    username, secret = str(data.get("Username", "")), str(data.get("Secret", ""))
    if username == "<token>":
        return Credentials(identity_token=secret, source=f"{source} identity token")
    return Credentials(username, secret, source=source)


# What a registry client is given: credentials, none, or a way to look them up when needed.
CredentialSource = Credentials | None | Callable[[], Awaitable[Credentials | None]]
