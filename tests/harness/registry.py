"""Run the real distribution registry (Debian ``docker-registry``) on a free loopback port."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import bcrypt

from tests.harness.servers import ProcessServer, free_port, require_binary

BINARY = os.environ.get("REGISTRY_BINARY", "docker-registry")

__all__ = ["RegistryProcess", "free_port", "htpasswd_auth", "require_binary", "token_auth"]


@dataclass
class RegistryProcess(ProcessServer):
    """A registry with filesystem storage. ``auth`` is the config's auth section, or None."""

    name: ClassVar[str] = "registry"

    directory: Path
    auth: dict[str, object] | None = None
    port: int = field(default_factory=free_port)
    tls: tuple[Path, Path] | None = None  # (certificate, key) PEM files
    process: subprocess.Popen[bytes] | None = None

    @property
    def access_log(self) -> Path:
        return self.directory / "registry.log"

    @property
    def log_path(self) -> Path:
        return self.access_log

    def command(self) -> list[str]:
        binary = require_binary(BINARY, "docker-registry")
        self.directory.mkdir(parents=True, exist_ok=True)
        config = {
            "version": "0.1",
            "log": {"level": "info", "formatter": "json", "accesslog": {"disabled": False}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.directory / "data")},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": self.host, "secret": secrets.token_hex(16)},
        }
        if self.auth:
            config["auth"] = self.auth
        if self.tls:
            config["http"]["tls"] = {"certificate": str(self.tls[0]), "key": str(self.tls[1])}  # type: ignore[index]
        path = self.directory / "config.yml"
        path.write_text(json.dumps(config))
        return [binary, "serve", str(path)]

    def ready(self) -> bool:
        if self.tls:
            return self.listening()
        try:
            with urllib.request.urlopen(f"{self.url}/v2/", timeout=1):
                return True
        except urllib.error.HTTPError as error:
            error.close()
            return True  # 401 means it is up

    def requests(self) -> list[AccessEntry]:
        """Every request the registry answered, from its combined-format access log."""
        text = self.access_log.read_text(errors="replace")
        return [
            AccessEntry(
                m["method"], m["uri"], int(m["status"]), int(m["size"]) if m["size"] != "-" else 0
            )
            for m in _ACCESS_LINE.finditer(text)
        ]

    def mark(self) -> int:
        """The number of requests so far; pass it to ``requests_since``."""
        return len(self.requests())

    def requests_since(self, mark: int) -> list[AccessEntry]:
        return self.requests()[mark:]


@dataclass(frozen=True)
class AccessEntry:
    method: str
    uri: str
    status: int
    size: int


_ACCESS_LINE = re.compile(
    r'^\S+ - \S+ \[[^\]]+\] "(?P<method>[A-Z]+) (?P<uri>\S+) HTTP/[0-9.]+" '
    r"(?P<status>\d{3}) (?P<size>\d+|-)",
    re.MULTILINE,
)


def htpasswd_auth(directory: Path, users: dict[str, str]) -> dict[str, object]:
    path = directory / "htpasswd"
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(
            f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()}\n"
            for user, password in users.items()
        )
    )
    return {"htpasswd": {"realm": "test-registry", "path": str(path)}}


def token_auth(realm: str, service: str, cert_path: Path, issuer: str) -> dict[str, object]:
    return {
        "token": {
            "realm": realm,
            "service": service,
            "issuer": issuer,
            "rootcertbundle": str(cert_path),
        }
    }
