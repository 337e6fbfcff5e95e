"""What the hostile-source suite needs: a measured CLI run in a sandbox, and recording endpoints.

A hostile source is played by an aiohttp app on loopback (``Recorder``) that keeps every
request it received, headers and body, so a test can assert what an attacker's endpoint saw.
The CLI runs as a child process (``run_measured``) with HOME, TMPDIR and the working directory
inside one sandbox folder; afterwards ``files_outside`` lists whatever it wrote there other
than under the destinations the test named. The child's own peak RSS comes from ``wait4``
through ``tests/harness/peakrss.py`` (``RUSAGE_CHILDREN`` would report the largest child of
the whole test session, and even ``wait4`` on a child forked from the session would count
the session's own memory).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from tests.harness.background import BackgroundLoop
from tests.harness.clirun import ROOT

COMMAND = [sys.executable, "-m", "github_org_backup"]
MiB = 2**20


@dataclass(frozen=True)
class Measured:
    """A finished CLI run: what it printed, how it ended, and what it cost."""

    returncode: int
    stdout: str
    stderr: str
    peak_rss_bytes: int
    wall_s: float
    timed_out: bool

    @property
    def peak_rss_mib(self) -> float:
        return self.peak_rss_bytes / MiB

    def __str__(self) -> str:  # what a failing assertion shows
        return (
            f"exit {self.returncode} after {self.wall_s:.1f} s, peak RSS "
            f"{self.peak_rss_mib:.0f} MiB{' (killed: timed out)' if self.timed_out else ''}\n"
            f"--- stdout\n{self.stdout[-3000:]}\n--- stderr\n{self.stderr[-6000:]}"
        )


@dataclass(frozen=True)
class Sandbox:
    """A folder holding the run's HOME, TMPDIR, working directory and destinations."""

    root: Path

    @classmethod
    def make(cls, parent: Path) -> Sandbox:
        root = parent / "sandbox"
        for sub in ("home", "tmp", "work", "docker"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "docker" / "config.json").write_text('{"auths": {}}')
        return cls(root)

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def docker(self) -> Path:
        return self.root / "docker"

    @property
    def work(self) -> Path:
        return self.root / "work"

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("GITHUB_", "DEST_", "SOURCE_", "BACKUP_", "DOCKER_"))
        }
        return (
            base
            | {
                "HOME": str(self.home),
                "TMPDIR": str(self.root / "tmp"),
                "DOCKER_CONFIG": str(self.docker),
                "PYTHONPATH": str(ROOT),
                "GIT_CONFIG_NOSYSTEM": "1",
            }
            | (extra or {})
        )

    def files_outside(self, *allowed: Path) -> list[Path]:
        """Every file in the sandbox not under one of ``allowed`` (nor the docker config)."""
        keep = [p.resolve() for p in (*allowed, self.docker)]
        stray: list[Path] = []
        for directory, _dirs, files in os.walk(self.root):
            for name in files:
                path = Path(directory, name).resolve()
                if not any(path.is_relative_to(a) for a in keep):
                    stray.append(path)
        return stray


def run_measured(
    args: list[str],
    sandbox: Sandbox,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    input_text: str | None = None,
) -> Measured:
    """Run the CLI to its end (killed after ``timeout``), measuring its own peak RSS and time."""
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.TemporaryFile() as stdin,
        tempfile.TemporaryDirectory() as scratch,
    ):
        if input_text is not None:
            stdin.write(input_text.encode())
            stdin.seek(0)
        rss_file = Path(scratch) / "rss"
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.harness.peakrss", str(rss_file), *COMMAND, *args],
            stdin=stdin,
            stdout=out,
            stderr=err,
            env=sandbox.env(env) | {"PYTHONPATH": str(ROOT)},
            cwd=sandbox.work,
            start_new_session=True,
        )
        timed_out = False
        while True:
            pid, status, _usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - started > timeout:
                timed_out = True
                os.killpg(process.pid, signal.SIGKILL)
                pid, status, _usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.05)
        wall = time.monotonic() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        measured = Measured(
            process.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            int(rss_file.read_text()) if rss_file.exists() else 0,
            wall,
            timed_out,
        )
    _record(measured)
    return measured


def _record(measured: Measured) -> None:
    """With HOSTILE_TABLE=FILE, append the run's figures (for docs/reliability.md)."""
    table = os.environ.get("HOSTILE_TABLE")
    if table:
        test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
        row = {
            "test": test,
            "exit": measured.returncode,
            "wall_s": round(measured.wall_s, 2),
            "rss_mib": round(measured.peak_rss_mib),
        }
        with open(table, "a") as file:
            file.write(json.dumps(row) + "\n")


@dataclass(frozen=True)
class Received:
    """One request as a hostile endpoint received it."""

    method: str
    path_qs: str
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        lowered = {k.lower(): v for k, v in self.headers.items()}
        return lowered.get(name.lower())


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Recorder:
    """An attacker's HTTP endpoint on loopback: every request is kept, then ``handler`` answers.

    ``handler`` defaults to 404. Tests assert on ``received`` (e.g. that no Authorization
    header, token or password ever arrived).
    """

    loop: BackgroundLoop
    handler: Handler | None = None
    received: list[Received] = field(default_factory=list)
    port: int = 0

    def start(self) -> Recorder:
        app = web.Application(client_max_size=64 * MiB)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.port = self.loop.serve(app)
        return self

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.received.append(Received(request.method, request.path_qs, dict(request.headers), body))
        if self.handler is None:
            return web.Response(status=404)
        return await self.handler(request)

    def saw_secret(self, *secrets: str) -> list[str]:
        """The secrets that reached this endpoint anywhere: path, a header or the body."""
        found: list[str] = []
        for request in self.received:
            blob = (
                request.path_qs
                + "\n"
                + "\n".join(f"{k}: {v}" for k, v in request.headers.items())
                + "\n"
                + request.body.decode(errors="replace")
            )
            found += [s for s in secrets if s and s in blob]
            auth = request.header("Authorization")
            if auth:
                found.append(f"Authorization header: {auth.split(' ')[0]} …")
        return found
