"""Registries as they are met in the wild: a proxy's body limit, refusals sent as 500, error
bodies with several entries, and schema 1 manifests. Real nginx and a real docker-registry."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from github_org_backup.base.retry import RetryPolicy
from github_org_backup.errors import RegistryError, TransientError
from github_org_backup.model.oci import DOCKER_MANIFEST, parse_manifest
from github_org_backup.model.reference import Registry
from github_org_backup.stores.registry import RegistryClient
from tests.conftest import CliRunner, LiveRegistry
from tests.harness.clirun import run_cli
from tests.harness.faultproxy import FaultProxy, Rule
from tests.harness.images import DOCKER_CONFIG, Blob, Corpus, Pusher, generate_corpus
from tests.harness.nginx import NginxProxy
from tests.harness.registry import RegistryProcess
from tests.harness.walker import Walker

pytestmark = pytest.mark.integration

LIMIT = 256 * 1024  # nginx client_max_body_size 256k; the default 1m works the same way
FAST = RetryPolicy(attempts=4, base_delay_s=0.01, max_delay_s=0.02)


@pytest.fixture(scope="module")
def backup_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    """An unauthenticated docker-registry of this module's own."""
    process = RegistryProcess(tmp_path_factory.mktemp("plain")).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def limited(
    tmp_path_factory: pytest.TempPathFactory, backup_registry: RegistryProcess
) -> Iterator[NginxProxy]:
    """nginx with a 256 KiB body limit in front of that registry."""
    proxy = NginxProxy(
        backup_registry.host, tmp_path_factory.mktemp("nginx"), client_max_body_size="256k"
    ).start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def corpus(source: LiveRegistry) -> Corpus:
    """Two single-platform images whose layers are over the limit (300 kB and 600 kB)."""
    corpus = generate_corpus(
        repositories=2,
        tags=1,
        platforms=("linux/amd64",),
        shared_layers=1,
        shared_layer_size=300_000,
        unique_layer_size=600_000,
        prefix="inputs",
        artifacts=False,
    )
    source.pusher().push(corpus)
    return corpus


def specs(corpus: Corpus, source_host: str, destination_host: str, prefix: str) -> str:
    return "\n".join(
        json.dumps(
            {
                "src": f"http://{source_host}/{i.repository}:{i.tag}",
                "dst": f"http://{destination_host}/{prefix}/{i.repository}:{i.tag}",
            }
        )
        for i in corpus.images
    )


def events(stderr: str, name: str) -> list[dict[str, object]]:
    found = []
    for line in stderr.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == name:
            found.append(event)
    return found


def errors(report: Path) -> list[str]:
    return [str(i["error"]) for i in json.loads(report.read_text())["images"] if i["error"]]


def assert_copied(corpus: Corpus, proxy: NginxProxy, prefix: str) -> None:
    walker = Walker(proxy.url, lambda _repository: None)
    for image in corpus.images:
        walked = walker.walk(f"{prefix}/{image.repository}", image.tag)
        assert walked.problems == []
        assert walked.digest == image.manifest.digest


# 413: a proxy's request-body limit


def test_a_body_limit_switches_the_registry_to_chunks_once(
    cli: CliRunner,
    corpus: Corpus,
    source: LiveRegistry,
    limited: NginxProxy,
    namespace: str,
    tmp_path: Path,
) -> None:
    """nginx answers 413 to the one-PUT upload: chunks below the limit, logged once, success."""
    report = tmp_path / "report.json"
    mark = len(limited.requests())
    result = cli(
        "copy", "--specs", "-", "--report", str(report),
        input=specs(corpus, source.host, limited.host, namespace),
    )  # fmt: skip
    assert result.returncode == 0, errors(report) if report.exists() else result.stderr[-3000:]
    assert_copied(corpus, limited, namespace)
    switched = events(result.stderr, "upload_switched_to_chunks")
    assert len(switched) == 1
    assert int(str(switched[0]["chunk_size"])) < int(str(switched[0]["refused_bytes"]))
    seen = limited.requests()[mark:]
    assert [e for e in seen if e.method == "PUT" and e.status == 413]  # it really was refused
    patches = [e for e in seen if e.method == "PATCH" and e.status == 202]
    assert len(patches) >= 4  # 300 kB and 600 kB layers, in chunks of at most 256 KiB
    assert all(e.request_length <= LIMIT + 4096 for e in patches)  # body plus headers


def test_a_chunk_size_over_the_limit_is_halved_until_it_passes(
    cli: CliRunner,
    corpus: Corpus,
    source: LiveRegistry,
    limited: NginxProxy,
    namespace: str,
    tmp_path: Path,
) -> None:
    """With --chunk-size 1MiB each PATCH is refused at first; it halves until one passes."""
    report = tmp_path / "report.json"
    mark = len(limited.requests())
    result = cli(
        "copy", "--specs", "-", "--report", str(report), "--chunk-size", "1MiB",
        input=specs(corpus, source.host, limited.host, namespace),
    )  # fmt: skip
    assert result.returncode == 0, errors(report) if report.exists() else result.stderr[-3000:]
    assert_copied(corpus, limited, namespace)
    seen = limited.requests()[mark:]
    assert [e for e in seen if e.method == "PATCH" and e.status == 413]
    assert not [e for e in seen if e.method == "PUT" and e.status == 413]


# What the registry said, and what is not worth a retry


@pytest.fixture
async def client(backup_registry: RegistryProcess) -> AsyncIterator[RegistryClient]:
    async with aiohttp.ClientSession() as session:
        registry = Registry(backup_registry.host, "http")
        yield RegistryClient(registry, session, None, FAST)


CONFIG_BLOB = Blob(b'{"architecture":"amd64","os":"linux"}', DOCKER_CONFIG)
MISSING = "sha256:" + "a" * 64


def manifest_with(layer: dict[str, object]) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": CONFIG_BLOB.descriptor(),
            "layers": [layer],
        }
    ).encode()


async def test_a_refusal_sent_as_500_is_not_retried_and_shows_every_entry(
    client: RegistryClient, backup_registry: RegistryProcess, namespace: str
) -> None:
    """distribution refuses a foreign layer with 500 UNKNOWN, UNKNOWN, MANIFEST_BLOB_UNKNOWN:
    sent once, reported with every entry and the digest, and not as a transient fault."""
    name = f"{namespace}/foreign"
    Pusher(backup_registry.url, lambda _r: None).push_blob(name, CONFIG_BLOB)
    foreign = {
        "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "digest": MISSING,
        "size": 10,
        "urls": ["https://example.com/layer.tar.gz"],
    }
    manifest = parse_manifest(manifest_with(foreign), DOCKER_MANIFEST)
    mark = backup_registry.mark()
    with pytest.raises(RegistryError) as caught:
        await client.put_manifest(name, manifest.digest, manifest)
    assert not isinstance(caught.value, TransientError)
    puts = [e for e in backup_registry.requests_since(mark) if e.method == "PUT"]
    assert [e.status for e in puts] == [500]
    message = str(caught.value)
    assert (
        f"PUT manifest {name}@{manifest.digest} on http://{backup_registry.host}: HTTP 500"
        in message
    )
    assert "UNKNOWN: unknown error (×2)" in message
    assert f"MANIFEST_BLOB_UNKNOWN: blob unknown to registry ({MISSING})" in message


async def test_a_missing_blob_is_named_in_the_error(
    client: RegistryClient, backup_registry: RegistryProcess, namespace: str
) -> None:
    """A 400 MANIFEST_BLOB_UNKNOWN says which blob is missing."""
    name = f"{namespace}/missing"
    Pusher(backup_registry.url, lambda _r: None).push_blob(name, CONFIG_BLOB)
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": MISSING, "size": 3}
    manifest = parse_manifest(manifest_with(layer), DOCKER_MANIFEST)
    with pytest.raises(RegistryError, match=f"MANIFEST_BLOB_UNKNOWN: .*{MISSING}"):
        await client.put_manifest(name, "v1", manifest)


# Answers injected by the fault proxy in front of the real registries


@pytest.fixture
def through_proxies(
    source: LiveRegistry, backup_registry: RegistryProcess, tmp_path: Path
) -> Iterator[tuple[FaultProxy, FaultProxy, Path]]:
    src, dst = FaultProxy(source.url).start(), FaultProxy(backup_registry.url).start()
    directory = tmp_path / "docker"
    directory.mkdir()
    basic = base64.b64encode(f"{source.username}:{source.password}".encode()).decode()
    (directory / "config.json").write_text(json.dumps({"auths": {src.host: {"auth": basic}}}))
    yield src, dst, directory
    src.stop()
    dst.stop()


def test_a_schema1_manifest_fails_as_schema1_not_as_a_hash_mismatch(
    corpus: Corpus,
    through_proxies: tuple[FaultProxy, FaultProxy, Path],
    namespace: str,
    tmp_path: Path,
) -> None:
    """A signed schema 1 manifest (its registry digest is over the unsigned payload) is
    refused at once with the schema 1 message; it is not fetched again."""
    src, dst, docker = through_proxies
    src.set_rules([Rule("schema1", ("GET", "HEAD"), "/manifests/")], 0)
    report = tmp_path / "report.json"
    image = corpus.images[0]
    spec = {
        "src": f"http://{src.host}/{image.repository}:{image.tag}",
        "dst": f"http://{dst.host}/{namespace}/{image.repository}:{image.tag}",
    }
    result = run_cli(["copy", "--specs", "-", "--report", str(report)], docker, json.dumps(spec))
    assert result.returncode != 0
    (error,) = errors(report)
    assert "schema 1 is not supported" in error
    assert "hashes to" not in error
    manifest_gets = [p for m, p, _ in src.seen if m == "GET" and "/manifests/" in p]
    assert len(manifest_gets) == 1


def test_a_client_error_code_in_a_500_fails_the_image_without_retries(
    corpus: Corpus,
    through_proxies: tuple[FaultProxy, FaultProxy, Path],
    namespace: str,
    tmp_path: Path,
) -> None:
    """Each manifest PUT answered 500 + MANIFEST_BLOB_UNKNOWN is sent once; the report shows
    every entry of the answer."""
    src, dst, docker = through_proxies
    dst.set_rules([Rule("500-client-code", ("PUT",), "/manifests/")], 0)
    report = tmp_path / "report.json"
    image = corpus.images[1]
    spec = {
        "src": f"http://{src.host}/{image.repository}:{image.tag}",
        "dst": f"http://{dst.host}/{namespace}/{image.repository}:{image.tag}",
    }
    result = run_cli(["copy", "--specs", "-", "--report", str(report)], docker, json.dumps(spec))
    assert result.returncode != 0
    (error,) = errors(report)
    assert "UNKNOWN: unknown error (×2); MANIFEST_BLOB_UNKNOWN: blob unknown to registry" in error
    puts = [p for m, p, _ in dst.seen if m == "PUT" and "/manifests/" in p]
    assert puts and len(puts) == len(set(puts))


@pytest.mark.parametrize(
    ("fault", "message"),
    [("not-json", "not valid JSON"), ("not-a-manifest", "does not have the fields")],
)
def test_a_registry_serving_a_non_manifest_fails_only_that_image(
    corpus: Corpus,
    through_proxies: tuple[FaultProxy, FaultProxy, Path],
    namespace: str,
    tmp_path: Path,
    fault: str,
    message: str,
) -> None:
    """Binary bytes or a config served as a manifest fail that image with a clear error; the
    other image of the run is copied and the report is written; no traceback."""
    src, dst, docker = through_proxies
    bad, good = corpus.images[0], corpus.images[1]
    src.set_rules([Rule(fault, ("GET", "HEAD"), f"/{bad.repository}/manifests/")], 0)
    report = tmp_path / "report.json"
    specs = "\n".join(
        json.dumps(
            {
                "src": f"http://{src.host}/{image.repository}:{image.tag}",
                "dst": f"http://{dst.host}/{namespace}/{fault}/{image.repository}:{image.tag}",
            }
        )
        for image in (bad, good)
    )
    result = run_cli(["copy", "--specs", "-", "--report", str(report)], docker, specs)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    images = {i["source"].rsplit("/", 1)[1]: i for i in json.loads(report.read_text())["images"]}
    failed = images[bad.repository.rsplit("/", 1)[1] + f":{bad.tag}"]
    assert failed["status"] == "failed" and message in failed["error"]
    assert images[good.repository.rsplit("/", 1)[1] + f":{good.tag}"]["status"] == "copied"
