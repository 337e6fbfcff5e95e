"""TLS is verified by default; --ca-file trusts a private CA; there is no fallback to HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CliRunner, LiveRegistry
from tests.harness.images import generate_corpus
from tests.harness.registry import RegistryProcess
from tests.harness.tlscerts import make_ca_and_server_cert

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_registry(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RegistryProcess, Path]]:
    directory = tmp_path_factory.mktemp("tls")
    ca, cert, key = make_ca_and_server_cert(directory)
    process = RegistryProcess(directory / "registry", tls=(cert, key)).start()
    yield process, ca
    process.stop()


def test_private_ca_needs_ca_file(
    cli: CliRunner,
    source: LiveRegistry,
    tls_registry: tuple[RegistryProcess, Path],
    namespace: str,
    tmp_path: Path,
) -> None:
    """Untrusted certificate: exit 1 naming --ca-file, and no plain-HTTP retry. With it: copied."""
    registry, ca = tls_registry
    corpus = generate_corpus(repositories=1, tags=1, prefix=namespace)
    source.pusher().push(corpus)
    image = corpus.images[0]
    src = f"http://{source.host}/{image.repository}:{image.tag}"
    dst = f"{registry.host}/mirror/{image.repository}:{image.tag}"
    mark = registry.mark()
    report = tmp_path / "report.json"
    refused = cli("copy", src, dst, "--report", str(report))
    assert refused.returncode == 2  # TLS refused its one image: the run could not go on
    assert "--ca-file" in json.loads(report.read_text())["images"][0]["error"]
    assert registry.requests_since(mark) == []  # nothing was sent in the clear
    trusted = cli("copy", src, dst, "--ca-file", str(ca))
    assert trusted.returncode == 0, trusted.stderr[-2000:]
    assert any(r.method == "PUT" and "/manifests/" in r.uri for r in registry.requests_since(mark))


def test_tls_to_a_plain_http_registry_suggests_the_http_prefix(
    cli: CliRunner,
    source: LiveRegistry,
    destination: LiveRegistry,
    namespace: str,
    tmp_path: Path,
) -> None:
    """A registry that answers the TLS handshake in plain HTTP gets a hint to write http://."""
    corpus = generate_corpus(repositories=1, tags=1, prefix=namespace)
    source.pusher().push(corpus)
    image = corpus.images[0]
    src = f"http://{source.host}/{image.repository}:{image.tag}"
    dst = f"{destination.host}/plain/{image.repository}:{image.tag}"  # no http:// prefix
    report = tmp_path / "report.json"
    result = cli("copy", src, dst, "--report", str(report))
    assert result.returncode == 2  # TLS failed for its one image
    error = json.loads(report.read_text())["images"][0]["error"]
    assert "answered TLS with plain HTTP: prefix the reference with http://" in error
    assert f"http://{destination.host}/" in error
    assert "Traceback" not in result.stderr
