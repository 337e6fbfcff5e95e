"""What a start loads: --help and --version none of the network or terminal libraries, a run
logging JSON no rich, and a run's TLS context only once https is in play (issue 22)."""

from __future__ import annotations

import json
import os
import pty
import select
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from github_org_backup.model.reference import Registry
from github_org_backup.settings.commands import COMMANDS
from github_org_backup.stores import factory
from github_org_backup.stores.factory import HttpSettings, open_clients
from github_org_backup.stores.registry.credentials import CredentialStore
from tests.harness.clirun import ROOT, cli_env
from tests.harness.tlscerts import make_ca_and_server_cert

HEAVY = ("aiohttp", "github", "requests", "rich")

# The CLI's entry with the given arguments, then which of HEAVY it loaded (the last line).
_CLI_PROBE = f"""
import json, sys
from github_org_backup.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({{"code": code, "loaded": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""


def _probe(tmp_path: Path, code: str, *args: str, stderr: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        cwd=ROOT,
        env=cli_env(tmp_path / "docker"),
    )


def _cli_loads(tmp_path: Path, *args: str) -> tuple[int, list[str], str]:
    """The exit code of the CLI run with ``args``, the HEAVY modules it loaded, its stdout."""
    process = _probe(tmp_path, _CLI_PROBE, *args, stderr=subprocess.DEVNULL)
    stdout, _ = process.communicate(timeout=120)
    *shown, last = stdout.splitlines()
    result = json.loads(last)
    return result["code"], result["loaded"], "\n".join(shown)


@pytest.mark.integration
@pytest.mark.parametrize(
    "args",
    [["--version"], ["--help"], *([c.name, "--help"] for c in COMMANDS)],
    ids=lambda args: " ".join(args),
)
def test_help_and_version_load_no_network_or_terminal_library(
    args: list[str], tmp_path: Path
) -> None:
    code, loaded, shown = _cli_loads(tmp_path, *args)
    assert code == 0
    assert shown.strip(), "nothing was printed"
    assert loaded == []


@pytest.mark.integration
def test_a_dispatched_command_loads_its_machinery(tmp_path: Path) -> None:
    """The probe sees what a command loads: a copy that runs has aiohttp, and (logging JSON,
    off a terminal, copying no image from GitHub) neither rich nor requests."""
    code, loaded, _ = _cli_loads(
        tmp_path, "copy", f"oci:{tmp_path}/absent:1", f"oci:{tmp_path}/backup:1"
    )
    assert code == 1  # the source layout does not exist: that image failed
    assert loaded == ["aiohttp"]


_TLS_PROBE = """
import json, ssl, sys
from github_org_backup.cli import main
code = main(sys.argv[1:])
import aiohttp.connector as connector
print(json.dumps({
    "code": code,
    "aiohttp_default_cas": connector._SSL_CONTEXT_VERIFIED.cert_store_stats()["x509_ca"],
    "aiohttp_default_verifies": connector._SSL_CONTEXT_VERIFIED.verify_mode == ssl.CERT_REQUIRED,
    "restored": ssl.create_default_context.__module__ == "ssl"
    and ssl.create_default_context().cert_store_stats()["x509_ca"] > 0,
}))
"""


@pytest.mark.integration
def test_a_run_loads_no_ca_store_for_aiohttps_unused_default_contexts(tmp_path: Path) -> None:
    """aiohttp builds two TLS contexts at import, each loading the CA store: a run imports it
    with those left empty (and still verifying, so they could only fail closed), and
    ``ssl`` is as it was afterwards for the run's own context."""
    process = _probe(
        tmp_path,
        _TLS_PROBE,
        "copy",
        f"oci:{tmp_path}/absent:1",
        f"oci:{tmp_path}/backup:1",
        stderr=subprocess.DEVNULL,
    )
    stdout, _ = process.communicate(timeout=120)
    result = json.loads(stdout.splitlines()[-1])
    assert result == {
        "code": 1,
        "aiohttp_default_cas": 0,
        "aiohttp_default_verifies": True,
        "restored": True,
    }
    system = ssl.create_default_context().cert_store_stats()["x509_ca"]
    assert system > 0, "this machine has no CA store: the check above proves nothing"


def _logging_probe(log_format: str) -> str:
    """Logging set up with ``log_format``, an error logged from a frame holding a secret, and
    whether rich was loaded (stdout)."""
    return f"""
import json, sys
from github_org_backup.base.logs import configure_logging
configure_logging({log_format!r})
import structlog

def fail():
    secret = "hun" + "ter2"  # a local variable: never shown
    return 1 / 0

try:
    fail()
except ZeroDivisionError:
    structlog.get_logger("t").error("it_broke", exc_info=True)
print(json.dumps("rich" in sys.modules))
"""


@pytest.mark.integration
@pytest.mark.parametrize("log_format", ["json", "auto"])
def test_logging_json_does_not_load_rich(log_format: str, tmp_path: Path) -> None:
    """JSON, asked for or chosen off a terminal: one event with its traceback, no rich."""
    process = _probe(tmp_path, _logging_probe(log_format), stderr=subprocess.PIPE)
    stdout, stderr = process.communicate(timeout=120)
    assert json.loads(stdout) is False
    event = json.loads(stderr)
    assert event["event"] == "it_broke"
    assert "ZeroDivisionError: division by zero" in event["exception"]


def _read_terminal(master: int, process: subprocess.Popen[str]) -> str:
    """What the process wrote to the terminal whose master end is ``master``."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1)
        if not ready:
            if process.poll() is not None:
                break
            continue
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: every writer has closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.integration
def test_the_console_renderer_on_a_terminal_draws_events_and_tracebacks(tmp_path: Path) -> None:
    """--log-format auto on a terminal: the console renderer, in colour, with rich's traceback
    of the error (rich loaded for it), and without the frame's local variables."""
    master, terminal = pty.openpty()
    try:
        process = _probe(tmp_path, _logging_probe("auto"), stderr=terminal)
        os.close(terminal)
        shown = _read_terminal(master, process)
        stdout, _ = process.communicate(timeout=120)
    finally:
        os.close(master)
    assert json.loads(stdout) is True
    assert "it_broke" in shown
    assert "\x1b[" in shown  # coloured
    assert "Traceback" in shown and "ZeroDivisionError" in shown
    assert "in fail" in shown  # the frame, drawn by rich
    assert "hunter2" not in shown


# The TLS context: built at the first https connection of a run, once.


async def _not_found(request: web.Request) -> web.Response:
    return web.Response(status=404)


@pytest.fixture
async def servers(tmp_path: Path) -> AsyncIterator[tuple[Path, str, list[str]]]:
    """A CA file, one plain-http registry host and two https ones (loopback, answering 404)."""
    ca, cert, key = make_ca_and_server_cert(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _not_found)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    hosts = []
    for context in (None, tls, tls):
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        hosts.append(f"127.0.0.1:{port}")
    yield ca, hosts[0], hosts[1:]
    await runner.cleanup()


async def test_the_tls_context_is_built_once_and_only_for_https(
    servers: tuple[Path, str, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca, plain, secure = servers
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    built: list[str | None] = []
    real = factory._ssl_context

    def counted(ca_pem: str | None) -> ssl.SSLContext:
        built.append(ca_pem)
        return real(ca_pem)

    monkeypatch.setattr(factory, "_ssl_context", counted)
    digest = "sha256:" + "0" * 64
    pem = ca.read_text()
    async with open_clients(CredentialStore.from_docker_config(), HttpSettings(ca_file=ca)) as get:
        for _ in range(2):
            assert await get(Registry(plain, "http")).blob_size("a/b", digest) is None
        assert built == []  # plain http, --ca-file or not: no TLS context
        ca.write_text("rotated away mid-run\n")  # read once, at the start: nothing changes
        for host in secure:  # two https registries, trusted through --ca-file
            assert await get(Registry(host)).blob_size("a/b", digest) is None
        assert built == [pem]
    ca.write_text(pem)


async def test_a_run_with_only_plain_http_registries_builds_no_tls_context(
    servers: tuple[Path, str, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ca, plain, _secure = servers
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))

    def refused(ca_pem: str | None) -> ssl.SSLContext:
        raise AssertionError("a TLS context was built for plain http")

    monkeypatch.setattr(factory, "_ssl_context", refused)
    async with open_clients(CredentialStore.from_docker_config(), HttpSettings()) as get:
        assert await get(Registry(plain, "http")).blob_size("a/b", "sha256:" + "0" * 64) is None
