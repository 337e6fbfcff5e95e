"""The copy command against real registries: byte-exact, deduplicated, idempotent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import CliRunner, LiveRegistry
from tests.harness.images import Corpus, generate_corpus

pytestmark = pytest.mark.integration


def specs_for(corpus: Corpus, source: LiveRegistry, destination: LiveRegistry, prefix: str) -> str:
    return "\n".join(
        json.dumps(
            {
                "src": f"http://{source.host}/{i.repository}:{i.tag}",
                "dst": f"http://{destination.host}/{prefix}/{i.repository}:{i.tag}",
            }
        )
        for i in corpus.images
    )


def failures(report_path: Path) -> list[str]:
    if not report_path.exists():
        return []
    return [
        f"{i['destination']}: {i['error']}"
        for i in json.loads(report_path.read_text())["images"]
        if i["status"] == "failed"
    ]


@pytest.fixture
def corpus(source: LiveRegistry, namespace: str) -> Corpus:
    corpus = generate_corpus(repositories=8, tags=10, prefix=namespace)
    source.pusher().push(corpus)
    return corpus


def test_corpus_copies_byte_exact_then_reruns_as_noop(
    cli: CliRunner,
    corpus: Corpus,
    source: LiveRegistry,
    destination: LiveRegistry,
    tmp_path: Path,
) -> None:
    """80 multi-arch tags and 4 artifacts in 8 repos arrive byte-exact; a rerun moves nothing."""
    specs = specs_for(corpus, source, destination, "backup")
    report_path = tmp_path / "cold.json"
    cold = cli("copy", "--specs", "-", "--report", str(report_path), input=specs)
    assert cold.returncode == 0, failures(report_path) or cold.stderr[-3000:]
    summary = json.loads(report_path.read_text())["summary"]

    walker = destination.walker()
    equal = 0
    for image in corpus.images:
        walked = walker.walk(f"backup/{image.repository}", image.tag)
        assert walked.problems == []
        assert walked.digest == image.manifest.digest
        equal += 1
    tagged_indexes = [i for i in corpus.images if i.tag != "sbom"]
    assert len(tagged_indexes) == 80
    assert equal == len(corpus.images)
    assert summary["images_copied"] == len(corpus.images)
    assert summary["images_failed"] == 0
    print(
        f"\ncold: {equal} of {len(corpus.images)} digests equal; summary {summary}; "
        f"unique blob bytes {corpus.unique_blob_bytes}"
    )
    assert summary["blobs_mounted"] > 0
    assert summary["bytes_copied"] <= 1.05 * corpus.unique_blob_bytes

    mark = destination.process.mark()
    report_path = tmp_path / "warm.json"
    warm = cli("copy", "--specs", "-", "--report", str(report_path), input=specs)
    assert warm.returncode == 0, failures(report_path) or warm.stderr[-3000:]
    summary = json.loads(report_path.read_text())["summary"]
    assert summary["images_skipped"] == len(corpus.images)
    assert summary["bytes_copied"] == 0
    assert summary["manifests_written"] == 0
    writes = [
        r for r in destination.process.requests_since(mark) if r.method in ("PUT", "POST", "PATCH")
    ]
    assert writes == []
    dest_requests = len(destination.process.requests_since(mark))
    print(f"warm: summary {summary}; destination requests {dest_requests}")
