"""The copy command's behaviour as users see it: single images, transforms, errors, secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import CliRunner, LiveRegistry
from tests.harness.images import Corpus, generate_corpus

pytestmark = pytest.mark.integration


@pytest.fixture
def small_corpus(source: LiveRegistry, namespace: str) -> Corpus:
    corpus = generate_corpus(
        repositories=2,
        tags=2,
        prefix=namespace,
        platforms=("linux/amd64", "linux/arm64/v8", "linux/s390x"),
    )
    source.pusher().push(corpus)
    return corpus


def ref(registry: LiveRegistry, path: str) -> str:
    return f"http://{registry.host}/{path}"


def test_single_image_by_tag_and_by_digest(
    cli: CliRunner,
    small_corpus: Corpus,
    source: LiveRegistry,
    destination: LiveRegistry,
    namespace: str,
) -> None:
    """SRC DST copies one tag; a digest reference copies by digest, untagged."""
    image = small_corpus.images[0]
    result = cli(
        "copy",
        ref(source, f"{image.repository}:{image.tag}"),
        ref(destination, f"single/{image.repository}:{image.tag}"),
    )
    assert result.returncode == 0, result.stderr
    walked = destination.walker().walk(f"single/{image.repository}", image.tag)
    assert (walked.digest, walked.problems) == (image.manifest.digest, [])

    digest = small_corpus.images[1].manifest.digest
    pinned = f"{small_corpus.images[1].repository}@{digest}"
    result = cli("copy", ref(source, pinned), ref(destination, f"pinned/{pinned}"))
    assert result.returncode == 0, result.stderr
    walked = destination.walker().walk(f"pinned/{small_corpus.images[1].repository}", digest)
    assert (walked.digest, walked.problems) == (digest, [])


def test_limit_platforms_leaves_only_chosen_platforms_and_nothing_dangling(
    cli: CliRunner,
    small_corpus: Corpus,
    source: LiveRegistry,
    destination: LiveRegistry,
) -> None:
    """--platform rewrites the index; dropped children are not copied; all kept ones exist."""
    image = next(i for i in small_corpus.images if "oci" in i.manifest.media_type)
    dst_repo = f"limited/{image.repository}"
    result = cli(
        "copy",
        ref(source, f"{image.repository}:{image.tag}"),
        ref(destination, f"{dst_repo}:{image.tag}"),
        "--platform",
        "linux/arm64",
    )
    assert result.returncode == 0, result.stderr
    walker = destination.walker()
    walked = walker.walk(dst_repo, image.tag)
    assert walked.problems == []
    index = json.loads(walker.manifest(dst_repo, image.tag) or b"{}")
    platforms = [(m["platform"]["os"], m["platform"]["architecture"]) for m in index["manifests"]]
    assert platforms == [("linux", "arm64"), ("unknown", "unknown")]
    assert (
        index["manifests"][1]["annotations"]["vnd.docker.reference.digest"]
        == (index["manifests"][0]["digest"])
    )
    source_index = json.loads(image.manifest.raw)
    dropped = [
        m["digest"]
        for m in source_index["manifests"]
        if m["platform"]["architecture"] in ("amd64", "s390x")
    ]
    assert dropped and all(walker.manifest(dst_repo, d) is None for d in dropped)

    again = cli(
        "copy",
        ref(source, f"{image.repository}:{image.tag}"),
        ref(destination, f"{dst_repo}:{image.tag}"),
        "--platform",
        "linux/arm64",
        "--report",
        "-",
    )
    assert again.returncode == 0
    assert '"images_skipped": 1' in again.stdout


SPEC_ERRORS = [
    ([("A", "B:1"), ("B:1", "C")], "both a source and a destination"),
    ([("A", "B:1"), ("A2", "B:1")], "two different specs"),
    ([("A", "B@" + "sha256:" + "1" * 64)], "does not pin identically"),
]


@pytest.mark.parametrize(("pairs", "message"), SPEC_ERRORS)
def test_invalid_spec_sets_exit_2_before_any_request(
    cli: CliRunner,
    destination: LiveRegistry,
    pairs: list[tuple[str, str]],
    message: str,
) -> None:
    """Contradictory spec sets are refused whole with exit 2, and nothing is contacted."""
    names = {
        "A": "x/a:1",
        "A2": "x/a2:1",
        "B:1": "y/b:1",
        "C": "z/c:1",
        "B@" + "sha256:" + "1" * 64: "y/b@sha256:" + "1" * 64,
    }
    specs = [
        {"src": ref(destination, names[s]), "dst": ref(destination, names[d])} for s, d in pairs
    ]
    mark = destination.process.mark()
    result = cli("copy", "--specs", "-", input=json.dumps(specs))
    assert result.returncode == 2
    assert message in result.stderr
    assert destination.process.requests_since(mark) == []


def test_digest_dst_with_transform_exits_2(cli: CliRunner) -> None:
    """A pinned destination cannot take a platform transform."""
    digest = "sha256:" + "1" * 64
    result = cli(
        "copy", f"127.0.0.1:1/a@{digest}", f"127.0.0.1:1/b@{digest}", "--platform", "linux/amd64"
    )
    assert result.returncode == 2
    assert "limitPlatforms would change" in result.stderr


def test_usage_errors_exit_2(cli: CliRunner, tmp_path: Path) -> None:
    """Bad references, missing arguments and unreadable files are usage errors."""
    assert cli("copy", "nohost", "127.0.0.1:1/b:1").returncode == 2
    assert cli("copy", "127.0.0.1:1/a:1").returncode == 2
    missing = cli("copy", "--specs", str(tmp_path / "absent.json"))
    assert missing.returncode == 2
    assert "cannot read specs" in missing.stderr


def test_one_failing_image_does_not_stop_the_others(
    cli: CliRunner,
    small_corpus: Corpus,
    source: LiveRegistry,
    destination: LiveRegistry,
    tmp_path: Path,
) -> None:
    """A missing source tag fails alone (exit 1); every other image is still copied."""
    specs = [
        {
            "src": ref(source, f"{i.repository}:{i.tag}"),
            "dst": ref(destination, f"partial/{i.repository}:{i.tag}"),
        }
        for i in small_corpus.images
    ]
    specs.append(
        {
            "src": ref(source, f"{small_corpus.images[0].repository}:does-not-exist"),
            "dst": ref(destination, "partial/missing:1"),
        }
    )
    report_path = tmp_path / "report.json"
    result = cli("copy", "--specs", "-", "--report", str(report_path), input=json.dumps(specs))
    assert result.returncode == 1
    report = json.loads(report_path.read_text())
    statuses = [i["status"] for i in report["images"]]
    assert statuses == ["copied"] * len(small_corpus.images) + ["failed"]
    assert "not found" in report["images"][-1]["error"]
    assert destination.walker().manifest("partial/missing", "1") is None


def test_credentials_never_reach_logs_or_report(
    cli: CliRunner,
    small_corpus: Corpus,
    source: LiveRegistry,
    destination: LiveRegistry,
    tmp_path: Path,
) -> None:
    """With debug logging, neither password appears in stderr, stdout or the report."""
    specs = [
        {
            "src": ref(source, f"{i.repository}:{i.tag}"),
            "dst": ref(destination, f"canary/{i.repository}:{i.tag}"),
        }
        for i in small_corpus.images
    ]
    report_path = tmp_path / "report.json"
    result = cli(
        "copy",
        "--specs",
        "-",
        "--report",
        str(report_path),
        "--log-level",
        "debug",
        "--progress-interval",
        "0.01",
        input=json.dumps(specs),
    )
    assert result.returncode == 0
    outputs = result.stderr + result.stdout + report_path.read_text()
    assert '"event": "progress"' in result.stderr
    for secret in (source.password, destination.password):
        assert secret not in outputs
    assert "Bearer ey" not in outputs and "Basic " not in outputs
