"""Run the real nginx as a reverse proxy with a request-body limit in front of a registry."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from tests.harness.servers import ProcessServer, free_port, require_binary

PACKAGE = "nginx-light"


def nginx_binary() -> str:
    # Debian installs it in /usr/sbin, which a non-root PATH often lacks.
    return require_binary("nginx", PACKAGE, extra_path="/usr/sbin:/usr/local/sbin")


@dataclass(frozen=True)
class NginxEntry:
    method: str
    uri: str
    status: int
    request_length: int


@dataclass
class NginxProxy(ProcessServer):
    """nginx on a free loopback port, passing everything to ``upstream`` (host:port)."""

    name: ClassVar[str] = "nginx"

    upstream: str
    directory: Path
    client_max_body_size: str = "256k"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.directory / "stderr.log"

    def command(self) -> list[str]:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "nginx.pid").unlink(missing_ok=True)
        config = self.directory / "nginx.conf"
        config.write_text(self._config())
        return [nginx_binary(), "-p", str(self.directory), "-c", str(config), "-e", "stderr"]

    def ready(self) -> bool:
        # nginx.pid is written once it is listening.
        return (self.directory / "nginx.pid").exists() and self.listening()

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
