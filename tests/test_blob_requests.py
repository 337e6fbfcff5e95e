"""Destination requests per new blob: a mount of the blob into its own repository stands in
for the HEAD once a run has seen that the registry mounts and that most blobs are new."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from github_org_backup.copy.engine import CopyEngine
from github_org_backup.copy.presence import Probe
from github_org_backup.model.reference import parse_reference
from github_org_backup.model.specs import CopySpec
from github_org_backup.output.report import Stats
from github_org_backup.stores.factory import HttpSettings, open_clients
from github_org_backup.stores.registry.credentials import Credentials, CredentialStore
from tests.conftest import CliRunner, LiveRegistry
from tests.harness.images import Manifest, generate_corpus
from tests.test_real_inputs import push_wrong_size_image

pytestmark = pytest.mark.integration


def test_a_cold_copy_sends_most_new_blobs_with_post_and_put_only(
    cli: CliRunner, source: LiveRegistry, destination: LiveRegistry, namespace: str
) -> None:
    """Three repositories sharing base layers: the first blobs are checked with a HEAD, then,
    once a mount has worked, new blobs go up after a self-mount's 202; all arrive intact."""
    corpus = generate_corpus(repositories=3, tags=4, prefix=namespace, artifacts=False)
    source.pusher().push(corpus)
    specs = [
        {
            "src": f"http://{source.host}/{i.repository}:{i.tag}",
            "dst": f"http://{destination.host}/{i.repository}:{i.tag}",
        }
        for i in corpus.images
    ]
    mark = len(destination.process.requests())
    result = cli("copy", "--specs", "-", "--concurrency", "2", input=json.dumps(specs))
    assert result.returncode == 0, result.stderr[-3000:]
    log = destination.process.requests_since(mark)
    heads = [e for e in log if e.method == "HEAD" and "/blobs/" in e.uri]
    puts = [e for e in log if e.method == "PUT" and "/blobs/uploads/" in e.uri]
    self_mounts = [
        e
        for e in log
        if e.method == "POST"
        and "mount=" in e.uri
        and e.uri.split("/v2/")[1].split("/blobs/")[0] == e.uri.split("from=")[1].split("&")[0]
    ]
    assert self_mounts, "no blob was probed with a mount into its own repository"
    # One asks, after the first upload, whether the registry mounts (201); the rest are checks.
    learned = [e for e in self_mounts if e.status == 201]
    assert len(learned) <= 1
    assert all(e.status == 202 for e in self_mounts if e not in learned)
    assert len(heads) < len(puts)
    checks = len(self_mounts) - len(learned)
    assert len(heads) + checks == len(puts) + sum(e.status == 200 for e in heads)
    walker = destination.walker()
    for image in corpus.images:
        walked = walker.walk(image.repository, image.tag)
        assert (walked.digest, walked.problems) == (image.manifest.digest, [])


def _copy(
    source: LiveRegistry,
    destination: LiveRegistry,
    pairs: list[tuple[str, str]],
    probe: Probe | None,
) -> list[tuple[str, str | None]]:
    """Copy in-process, starting from a given probe state for the destination."""
    explicit = {
        source.host: Credentials(source.username, source.password),
        destination.host: Credentials(destination.username, destination.password),
    }

    async def run() -> list[tuple[str, str | None]]:
        async with open_clients(
            CredentialStore.from_docker_config(explicit=explicit), HttpSettings()
        ) as clients:
            engine = CopyEngine(clients, Stats(), concurrency=1)
            if probe is not None:
                engine._blobs._probes[parse_reference(pairs[0][1]).repository.registry] = probe
            specs = [CopySpec(parse_reference(s), parse_reference(d)) for s, d in pairs]
            return [(r.status, r.error) for r in await engine.run(specs)]

    return asyncio.run(run())


def test_a_present_blob_found_by_self_mount_still_has_its_size_checked(
    source: LiveRegistry, destination: LiveRegistry, namespace: str, tmp_path: Path
) -> None:
    """In mount mode a blob already in the repository answers 201, and is then checked like
    after a HEAD: the image whose descriptor lies about its size fails; the true one copies."""
    corpus = generate_corpus(repositories=1, tags=1, prefix=namespace, artifacts=False)
    platform_image: Manifest = corpus.images[0].manifest.children[0]
    repository = f"{namespace}/lies"
    push_wrong_size_image(source, repository, platform_image)
    src = f"http://{source.host}/{repository}"
    dst = f"http://{destination.host}/{repository}"
    assert _copy(source, destination, [(f"{src}:good", f"{dst}:g0")], None) == [("copied", None)]
    mark = len(destination.process.requests())
    probe = Probe(mounted=True, absent=1)
    results = _copy(
        source, destination, [(f"{src}:bad", f"{dst}:bad"), (f"{src}:good", f"{dst}:good")], probe
    )
    assert results[0][0] == "failed" and "bytes" in (results[0][1] or ""), results
    assert results[1] == ("copied", None)
    log = destination.process.requests_since(mark)
    assert any(e.method == "POST" and "mount=" in e.uri and e.status == 201 for e in log)
    assert not any(e.method == "PUT" and "/blobs/uploads/" in e.uri for e in log)
    assert probe.present >= 1
