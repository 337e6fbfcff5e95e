"""What every stand-in server shares: a free loopback port, a bounded start, a sure stop.

``ProcessServer`` runs a real binary (the registry, nginx, ...): its subclass writes its
configuration and gives the command line and a readiness probe; ``start`` waits for the probe
within ``start_timeout_s``, moves to another port once if the chosen one was taken in the
meantime, and raises with the tail of the process's log if it exits or never gets ready;
``stop`` terminates, then kills.

``ThreadedHTTPServer`` serves a ``BaseHTTPRequestHandler`` from a daemon thread on a free
loopback port (the GitHub stand-ins, the git server, the token service).

Both are context managers: ``with Server(...) as server:`` stops it whatever happens.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar, Self

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A port free on loopback now (another process may still take it before the bind)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def require_binary(name: str, package: str, extra_path: str | None = None) -> str:
    """The binary's path, or a RuntimeError saying which Debian package to install."""
    path = shutil.which(name) or (extra_path and shutil.which(name, path=extra_path))
    if not path:
        raise RuntimeError(
            f"{name} is not installed: run `apt-get install -y --no-install-recommends "
            f"{package}` (see README, Tests)"
        )
    return path


class ProcessServer:
    """A binary serving on ``port`` of loopback. Subclasses are dataclasses with these fields."""

    name: ClassVar[str] = "server"
    start_timeout_s: ClassVar[float] = 20.0
    stop_timeout_s: ClassVar[float] = 10.0
    # What the process logs when its port was taken between free_port() and its bind.
    port_taken: ClassVar[re.Pattern[str]] = re.compile("address already in use", re.IGNORECASE)

    port: int
    process: subprocess.Popen[bytes] | None

    # What subclasses provide.

    @property
    def log_path(self) -> Path:
        raise NotImplementedError

    def command(self) -> list[str]:
        """Write the configuration for ``self.port``; the command line that serves it."""
        raise NotImplementedError

    def ready(self) -> bool:
        """True once it answers; may raise OSError while it does not yet."""
        raise NotImplementedError

    # The shared lifecycle.

    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> Self:
        for attempt in range(2):
            if self._start_once(moved=attempt > 0):
                return self
            self.port = free_port()
        raise AssertionError("unreachable")

    def _start_once(self, moved: bool) -> bool:
        command = self.command()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log)
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                text = self.log_text()
                if self.port_taken.search(text) and not moved:
                    return False  # another process took the port: try once more on another
                raise RuntimeError(f"{self.name} exited: {text[-2000:]}")
            try:
                if self.ready():
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"{self.name} on {self.host} did not start within {self.start_timeout_s:.0f}s: "
            f"{self.log_text()[-2000:]}"
        )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def listening(self) -> bool:
        """A readiness probe for servers with nothing better: the port accepts connections."""
        with socket.create_connection((LOOPBACK, self.port), timeout=1):
            return True

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(self.stop_timeout_s)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


class ThreadedHTTPServer:
    """A ``http.server`` handler served from a daemon thread on a free loopback port."""

    _server: ThreadingHTTPServer | None = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def start(self) -> Self:
        self._server = ThreadingHTTPServer((LOOPBACK, 0), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
