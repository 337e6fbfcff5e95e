"""Run the real nginx as a reverse proxy with a request-body limit in front of a registry."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness.registry import free_port

PACKAGE = "nginx-light"


def nginx_binary() -> str:
    # Debian installs it in /usr/sbin, which a non-root PATH often lacks.
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise RuntimeError(
            f"nginx is not installed: run `apt-get install -y --no-install-recommends {PACKAGE}`"
        )
    return found


@dataclass(frozen=True)
class NginxEntry:
    method: str
    uri: str
    status: int
    request_length: int


@dataclass
class NginxProxy:
    """nginx on a free loopback port, passing everything to ``upstream`` (host:port)."""

    upstream: str
    directory: Path
    client_max_body_size: str = "256k"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    _moved: bool = field(default=False, repr=False)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> NginxProxy:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "nginx.conf"
        config.write_text(self._config())
        log = (self.directory / "stderr.log").open("ab")
        self.process = subprocess.Popen(
            [nginx_binary(), "-p", str(self.directory), "-c", str(config), "-e", "stderr"],
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                text = (self.directory / "stderr.log").read_text(errors="replace")
                if "Address already in use" in text and not self._moved:
                    # Another process took the free port between free_port() and the bind.
                    self.port, self._moved = free_port(), True
                    return self.start()
                raise RuntimeError(f"nginx exited: {text[-2000:]}")
            if not (self.directory / "nginx.pid").exists():  # written once it is listening
                time.sleep(0.05)
                continue
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nginx on {self.host} did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def requests(self) -> list[NginxEntry]:
        """Every request nginx answered, oldest first."""
        path = self.directory / "access.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return [NginxEntry(m[1], m[2], int(m[3]), int(m[4])) for m in _ENTRY.finditer(text)]

    def _config(self) -> str:
        d = self.directory
        # As root, nginx hands requests to workers running as "nobody", who could not write
        # the temp directories under a private pytest directory.
        user = "user root root;" if os.geteuid() == 0 else ""
        return f"""
daemon off;
worker_processes 1;
{user}
pid {d}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    log_format entries '$request_method $request_uri $status $request_length';
    access_log {d}/access.log entries;
    error_log {d}/error.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{self.port};
        client_max_body_size {self.client_max_body_size};
        location / {{
            proxy_pass http://{self.upstream};
            proxy_set_header Host $http_host;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
"""


_ENTRY = re.compile(r"^([A-Z]+) (\S+) (\d{3}) (\d+)$", re.MULTILINE)
