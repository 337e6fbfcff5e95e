"""Run the real distribution registry (Debian ``docker-registry``) on a free loopback port."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt

BINARY = os.environ.get("REGISTRY_BINARY", "docker-registry")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(
            f"{name} is not installed: run `apt-get install -y {package}` (see README, Tests)"
        )
    return path


@dataclass
class RegistryProcess:
    """A registry with filesystem storage. ``auth`` is the config's auth section, or None."""

    directory: Path
    auth: dict[str, object] | None = None
    port: int = field(default_factory=free_port)
    tls: tuple[Path, Path] | None = None  # (certificate, key) PEM files
    process: subprocess.Popen[bytes] | None = None
    _moved: bool = field(default=False, repr=False)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def access_log(self) -> Path:
        return self.directory / "registry.log"

    def start(self) -> RegistryProcess:
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
        log = self.access_log.open("ab")
        self.process = subprocess.Popen([binary, "serve", str(path)], stdout=log, stderr=log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                text = self.access_log.read_text(errors="replace")
                if "address already in use" in text and not self._moved:
                    # Another process took the free port between free_port() and the bind.
                    self.port, self._moved = free_port(), True
                    return self.start()
                raise RuntimeError(f"registry exited: {text[-2000:]}")
            try:
                if self.tls:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                        return self
                urllib.request.urlopen(f"{self.url}/v2/", timeout=1)
                return self
            except urllib.error.HTTPError:
                return self  # 401 means it is up
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"registry on {self.host} did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()

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
