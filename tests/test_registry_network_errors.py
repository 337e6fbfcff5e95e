"""A registry that cannot be reached is one line naming the host and what to do: connection
refused, a failed DNS lookup, a connect timeout, TLS to a plain-HTTP port, http:// to a TLS
port, a certificate that is not trusted or not for this name. In a copy's per-image error (log
and report, exit 1) and in the one-line error of verify, snapshots and restore."""

from __future__ import annotations

import hashlib
import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from github_org_backup.base.retry import RetryPolicy
from github_org_backup.stores.registry.errorbody import parse_error_body
from github_org_backup.stores.registry.wire import tls_failure
from tests.conftest import LiveRegistry
from tests.harness.clirun import CliResult, run_in_process
from tests.harness.nginx import NginxProxy
from tests.harness.registry import RegistryProcess
from tests.harness.tlscerts import make_ca_and_server_cert

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
REFUSED_HINT = "is the registry running, and is the port right?"


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every attempt the policy allows, without the waits between them."""
    monkeypatch.setattr(RetryPolicy, "delay", lambda self, attempt, retry_after=None: 0.0)


@pytest.fixture
def layout(tmp_path: Path) -> str:
    """An OCI layout holding one small image, acme/app:1, as the copy's reachable side."""
    return one_image_layout(tmp_path)


def one_image_layout(tmp_path: Path) -> str:
    root = tmp_path / "layout"
    (root / "blobs" / "sha256").mkdir(parents=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')

    def blob(data: bytes) -> dict[str, Any]:
        digest = hashlib.sha256(data).hexdigest()
        (root / "blobs" / "sha256" / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json"} | blob(config),
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar"} | blob(b"x")],
        }
    ).encode()
    entry = {"mediaType": OCI_MANIFEST, **blob(manifest)}
    entry["annotations"] = {"org.opencontainers.image.ref.name": "acme/app:1"}
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    return f"oci:{root}:acme/app:1"


def _events(result: CliResult, event: str) -> list[dict[str, Any]]:
    lines = (json.loads(line) for line in result.stderr.splitlines() if line.startswith("{"))
    return [e for e in lines if e.get("event") == event]


def _run(tmp_path: Path, *argv: str) -> CliResult:
    docker = tmp_path / "docker"
    docker.mkdir(exist_ok=True)
    return run_in_process([*argv, "--log-format", "json"], {"DOCKER_CONFIG": str(docker)})


def copy_error(tmp_path: Path, src: str, dst: str, *extra: str) -> str:
    """Copy one image in this process: it fails (exit 2 when it failed for want of access, as
    the whole run then did; 1 otherwise), and the image's error, the same in the report and
    in the log's image_failed event."""
    report = tmp_path / "report.json"
    result = _run(tmp_path, "copy", src, dst, "--report", str(report), *extra)
    assert result.returncode in (1, 2), result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    [image] = json.loads(report.read_text())["images"]
    [failed] = _events(result, "image_failed")
    assert image["status"] == "failed" and failed["error"] == image["error"]
    return str(image["error"])


def run_error(tmp_path: Path, *argv: str) -> str:
    """A command that cannot go on: exit 2, not a crash, and its one run_failed line."""
    result = _run(tmp_path, *argv)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    [failed] = _events(result, "run_failed")
    return str(failed["error"])


def refused_port() -> int:
    """A loopback port nothing listens on: bound, then closed."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_copy_to_a_refused_port_says_connection_refused(layout: str, tmp_path: Path) -> None:
    port = refused_port()
    error = copy_error(tmp_path, layout, f"http://127.0.0.1:{port}/mirror/app:1")
    assert error == (
        f"cannot reach registry 127.0.0.1:{port}: connection refused (6 attempts); {REFUSED_HINT}"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ("verify", "--dest", "http://{host}/backup"),
        ("snapshots", "--dest", "http://{host}/backup"),
        ("restore", "--from", "http://{host}/backup", "--to", "oci:{tmp}/restored"),
    ],
    ids=["verify", "snapshots", "restore"],
)
def test_commands_on_a_refused_port_fail_in_one_line(argv: tuple[str, ...], tmp_path: Path) -> None:
    host = f"127.0.0.1:{refused_port()}"
    error = run_error(tmp_path, *(a.format(host=host, tmp=tmp_path) for a in argv))
    assert error.startswith(f"cannot reach registry {host}: connection refused (")
    assert error.endswith(REFUSED_HINT)
    assert "ClientConnectorError" not in error and "\n" not in error


class _NoSuchName(aiohttp.ThreadedResolver):
    """A resolver that knows no name: a DNS failure without asking any DNS server."""

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def test_a_failed_dns_lookup_names_the_host(
    layout: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aiohttp.connector, "DefaultResolver", _NoSuchName)
    error = copy_error(tmp_path, layout, "registry.invalid:5000/mirror/app:1")
    assert error == (
        "cannot reach registry registry.invalid:5000: DNS lookup of registry.invalid failed "
        "(Name or service not known; 6 attempts); check the host name in the reference, and "
        "this machine's DNS"
    )
    verify = run_error(tmp_path, "verify", "--dest", "registry.invalid:5000/backup")
    assert verify.startswith("cannot reach registry registry.invalid:5000: DNS lookup of ")


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port whose accept queue is full: a connect hangs until its timeout."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = int(server.getsockname()[1])
        fillers = []
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        yield port
        for filler in fillers:
            filler.close()


def test_a_connect_timeout_says_how_long(layout: str, tmp_path: Path, silent_port: int) -> None:
    dst = f"http://127.0.0.1:{silent_port}/mirror/app:1"
    error = copy_error(tmp_path, layout, dst, "--connect-timeout", "0.5")
    assert error == (
        f"cannot reach registry 127.0.0.1:{silent_port}: connect timed out after 0.5 s "
        "(6 attempts); check the host and port, and that no firewall drops the connection "
        "(--connect-timeout sets the wait)"
    )


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"Client sent an HTTP request to an HTTPS server.\n", None),  # Go: no Content-Type
        (
            b"<html><head><title>400 The plain HTTP request was sent to HTTPS port</title>"
            b"</head><body><center><h1>400 Bad Request</h1></center></body></html>",
            "text/html",
        ),
    ],
    ids=["distribution", "nginx"],
)
def test_a_tls_ports_refusal_is_recognised(body: bytes, content_type: str | None) -> None:
    said = parse_error_body(body, content_type)
    assert said.tls_port and said.summary()
    assert not parse_error_body(b"Bad Request\n", "text/plain").tls_port


@pytest.mark.parametrize(
    "reason",
    [
        "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)",  # OpenSSL 1.1, 3.0
        "[SSL: RECORD_LAYER_FAILURE] record layer failure (_ssl.c:1032)",  # OpenSSL 3.2 and on
        "[SSL: PACKET_LENGTH_TOO_LONG] packet length too long (_ssl.c:1000)",
    ],
)
def test_every_openssl_wording_of_a_plain_answer_suggests_http(reason: str) -> None:
    key = SimpleNamespace(host="registry.internal", port=5000, ssl=True)
    exc = aiohttp.ClientConnectorSSLError(key, ssl.SSLError(1, reason))
    assert tls_failure(exc) == (
        "registry.internal:5000 answered TLS with plain HTTP: prefix the reference with http:// "
        "for a plain-HTTP registry (http://registry.internal:5000/...)"
    )


# Against the real registry (plain and with TLS) and nginx with TLS.


class _TlsNginx(NginxProxy):
    """nginx serving TLS on its port, with the certificate made for 127.0.0.1."""

    certificate: tuple[Path, Path] = (Path(), Path())

    def _config(self) -> str:
        cert, key = self.certificate
        listen = f"listen 127.0.0.1:{self.port};"
        tls = (
            f"listen 127.0.0.1:{self.port} ssl; ssl_certificate {cert}; ssl_certificate_key {key};"
        )
        return super()._config().replace(listen, tls)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return make_ca_and_server_cert(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def tls_registry(
    tmp_path_factory: pytest.TempPathFactory, certificates: tuple[Path, Path, Path]
) -> Iterator[RegistryProcess]:
    _ca, cert, key = certificates
    process = RegistryProcess(tmp_path_factory.mktemp("tls-registry"), tls=(cert, key)).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def tls_nginx(
    tmp_path_factory: pytest.TempPathFactory, certificates: tuple[Path, Path, Path]
) -> Iterator[_TlsNginx]:
    _ca, cert, key = certificates
    proxy = _TlsNginx("127.0.0.1:9", tmp_path_factory.mktemp("tls-nginx"))
    proxy.certificate = (cert, key)
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.mark.integration
@pytest.mark.parametrize("server", ["tls_registry", "tls_nginx"])
def test_http_to_a_tls_port_says_to_drop_the_prefix(
    server: str, request: pytest.FixtureRequest, layout: str, tmp_path: Path
) -> None:
    """distribution's 400 "Client sent an HTTP request to an HTTPS server." and nginx's "The
    plain HTTP request was sent to HTTPS port", to a HEAD (copy) and to a GET (verify)."""
    host = request.getfixturevalue(server).host
    expected = f"{host} speaks TLS: write the reference without http:// (https is the default)"
    assert copy_error(tmp_path, layout, f"http://{host}/mirror/app:1") == expected
    assert run_error(tmp_path, "verify", "--dest", f"http://{host}/backup") == expected


def test_tls_to_a_plain_port_says_to_add_the_prefix(
    destination: LiveRegistry, layout: str, tmp_path: Path
) -> None:
    host = destination.host
    expected = (
        f"{host} answered TLS with plain HTTP: prefix the reference with http:// for a "
        f"plain-HTTP registry (http://{host}/...)"
    )
    assert copy_error(tmp_path, layout, f"{host}/mirror/app:1") == expected
    assert run_error(tmp_path, "snapshots", "--dest", f"{host}/backup") == expected


@pytest.mark.integration
def test_an_untrusted_certificate_names_ca_file(
    tls_registry: RegistryProcess, layout: str, tmp_path: Path
) -> None:
    host = tls_registry.host
    dst = f"{host}/mirror/app:1"
    assert copy_error(tmp_path, layout, dst) == (
        f"TLS certificate of {host} not trusted (unable to get local issuer certificate): "
        "give the CA that signed it with --ca-file PEM (trusted beside the system's CAs)"
    )
    other_ca, _cert, _key = make_ca_and_server_cert(tmp_path)
    with_other = copy_error(tmp_path, layout, dst, "--ca-file", str(other_ca))
    assert with_other.startswith(f"TLS certificate of {host} not trusted (")  # OpenSSL's reason
    assert with_other.endswith(
        f"): the CA bundle --ca-file {other_ca} does not hold the CA that signed it"
    )
    verify = run_error(tmp_path, "verify", "--dest", f"{host}/backup")
    assert verify.startswith(f"TLS certificate of {host} not trusted (")


@pytest.mark.integration
def test_a_certificate_for_another_name_says_so(
    tls_registry: RegistryProcess,
    certificates: tuple[Path, Path, Path],
    layout: str,
    tmp_path: Path,
) -> None:
    """The certificate is for 127.0.0.1; the reference says localhost."""
    ca = certificates[0]
    host = f"localhost:{tls_registry.port}"
    error = copy_error(tmp_path, layout, f"{host}/mirror/app:1", "--ca-file", str(ca))
    assert error == (
        f"TLS certificate of {host} is not valid for localhost (Hostname mismatch, certificate "
        "is not valid for 'localhost'): write the reference with a name the certificate "
        "covers, or give the registry a certificate for localhost"
    )


async def test_a_token_service_that_refuses_connections_is_named() -> None:
    """A Bearer realm on a closed port: the refusal in words, not aiohttp's class name."""
    from github_org_backup.errors import AuthError
    from github_org_backup.model.reference import Registry
    from github_org_backup.stores.registry.auth import Authenticator
    from github_org_backup.stores.registry.credentials import Credentials

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    realm = f'Bearer realm="http://127.0.0.1:{port}/token",service="registry"'
    async with aiohttp.ClientSession() as session:
        auth = Authenticator(Registry(f"127.0.0.1:{port}", "http"), Credentials("u", "p"), session)
        with pytest.raises(AuthError, match="connection refused") as caught:
            await auth.challenge(realm, ["repository:a:pull"], None)
    assert "ClientConnectorError" not in str(caught.value)
