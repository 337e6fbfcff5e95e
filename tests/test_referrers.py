"""OCI 1.1 referrers follow their subject where the source has the referrers API."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LiveRegistry
from tests.harness.clirun import run_cli
from tests.harness.faultproxy import FaultProxy
from tests.harness.images import OCI_MANIFEST, Image, Manifest, build_artifact, generate_corpus

pytestmark = pytest.mark.integration


@pytest.fixture
def signed(source: LiveRegistry, namespace: str) -> tuple[Image, Manifest]:
    """An image and an untagged SBOM artifact whose subject is that image."""
    corpus = generate_corpus(repositories=1, tags=1, prefix=namespace, artifacts=False)
    source.pusher().push(corpus)
    image = corpus.images[0]
    sbom = build_artifact(random.Random(3), image.manifest)
    source.pusher().push_manifest(image.repository, sbom.digest, sbom)
    return image, sbom


@pytest.fixture
def api(source: LiveRegistry) -> Iterator[FaultProxy]:
    """The source registry, plus the referrers API it lacks."""
    proxy = FaultProxy(source.url).start()
    yield proxy
    proxy.stop()


def test_referrers_are_copied_when_the_source_lists_them(
    signed: tuple[Image, Manifest],
    api: FaultProxy,
    source: LiveRegistry,
    destination: LiveRegistry,
    tmp_path: Path,
) -> None:
    """With the API, the SBOM arrives by digest; without it (404), the copy still succeeds."""
    image, sbom = signed
    api.referrers = {
        image.manifest.digest: [
            {
                "mediaType": OCI_MANIFEST,
                "digest": sbom.digest,
                "size": len(sbom.raw),
                "artifactType": "application/spdx+json",
            }
        ]
    }
    config = tmp_path / "docker"
    config.mkdir()
    auths = {
        host: {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
        for host, user, password in (
            (api.host, source.username, source.password),
            (destination.host, destination.username, destination.password),
        )
    }
    (config / "config.json").write_text(json.dumps({"auths": auths}))
    walker = destination.walker()
    for path, listed in (("with-api", True), ("without-api", False)):
        if not listed:
            api.referrers = None
        result = run_cli(
            [
                "copy",
                f"http://{api.host}/{image.repository}:{image.tag}",
                f"http://{destination.host}/{path}/{image.repository}:{image.tag}",
            ],
            config,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        copied = walker.manifest(f"{path}/{image.repository}", sbom.digest)
        assert (copied == sbom.raw) is listed
        assert walker.walk(f"{path}/{image.repository}", image.tag).problems == []
