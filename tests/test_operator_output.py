"""What people see: the GitHub Actions job summary, and the live display on a terminal."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
from pathlib import Path

import pytest

from github_org_backup.model.reference import Reference, Registry, Repository
from github_org_backup.model.results import ImageResult, MovedTag, PackageResult
from github_org_backup.output.report import (
    Counts,
    Discovery,
    HistoryOutcome,
    Prune,
    RunReport,
)
from github_org_backup.output.summary import Outcome, markdown, outcome
from tests.conftest import CliRunner, LiveRegistry
from tests.harness.clirun import COMMAND, ROOT, cli_env
from tests.harness.images import Corpus, generate_corpus

pytestmark = pytest.mark.integration


@pytest.fixture
def corpus(source: LiveRegistry, namespace: str) -> Corpus:
    corpus = generate_corpus(repositories=2, tags=2, prefix=namespace)
    source.pusher().push(corpus)
    return corpus


def _specs(corpus: Corpus, source: LiveRegistry, destination: LiveRegistry, to: str) -> str:
    lines = [
        json.dumps(
            {
                "src": f"http://{source.host}/{image.repository}:{image.tag}",
                "dst": f"http://{destination.host}/{to}/{image.repository}:{image.tag}",
            }
        )
        for image in corpus.images
    ]
    return "\n".join(lines)


def test_step_summary_shows_counts_bytes_and_failures(
    cli: CliRunner,
    corpus: Corpus,
    source: LiveRegistry,
    destination: LiveRegistry,
    namespace: str,
    tmp_path: Path,
) -> None:
    """With GITHUB_STEP_SUMMARY set, a run appends Markdown: counts, bytes, failures and why."""
    summary_file = tmp_path / "step-summary.md"
    summary_file.write_text("earlier step\n")
    missing = f"http://{source.host}/{namespace}/absent:1.0"
    specs = _specs(corpus, source, destination, "summary")
    specs += "\n" + json.dumps(
        {"src": missing, "dst": f"http://{destination.host}/summary/{namespace}/absent:1.0"}
    )
    result = cli(
        "copy", "--specs", "-", input=specs, env={"GITHUB_STEP_SUMMARY": str(summary_file)}
    )
    assert result.returncode == 1, result.stderr
    text = summary_file.read_text()
    assert text.startswith("earlier step\n")  # appended, never replaced
    assert "## :x: github-org-backup copy finished with failures" in text
    assert f"| images copied | {len(corpus.images)} |" in text
    assert "| images failed | 1 |" in text
    assert "| bytes copied | " in text and "| duration | " in text
    assert "### Failures (1)" in text
    failure_row = next(line for line in text.splitlines() if r"absent\:1\.0" in line)
    assert "not found" in failure_row


def test_without_step_summary_nothing_is_written(
    cli: CliRunner, corpus: Corpus, source: LiveRegistry, destination: LiveRegistry, tmp_path: Path
) -> None:
    """Outside Actions no summary file appears, and stderr stays JSON lines."""
    result = cli("copy", "--specs", "-", input=_specs(corpus, source, destination, "plain"))
    assert result.returncode == 0, result.stderr
    for line in result.stderr.splitlines():
        json.loads(line)
    assert not list(tmp_path.glob("*.md"))


def test_markdown_lists_failed_packages_and_moved_tags() -> None:
    """Package failures from discovery and tags moved at the source get tables of their own."""
    report = RunReport(
        Counts(images_copied=2, bytes_copied=3 * 2**20, duration_s=4.25),
        packages=(
            PackageResult("team/app", "failed", error="HTTP 403: SAML | SSO"),
            PackageResult("ok", "discovered", 1),
        ),
        history=HistoryOutcome(
            "20261129T171538.123Z", (MovedTag("acme/app:1.2.3", "sha256:aa", "sha256:bb"),)
        ),
    )
    text = markdown("registry", report, 1)
    assert "| images copied | 2 |" in text
    assert r"| bytes copied | 3\.0 MiB |" in text
    assert r"| duration | 4\.2 s |" in text or r"| duration | 4\.3 s |" in text
    assert r"| team\/app | HTTP 403\: SAML \| SSO |" in text  # source text, escaped
    assert "ok" not in text.split("### Failures")[1].split("###")[0].replace("| --- |", "")
    assert r"| acme\/app\:1\.2\.3 | sha256\:aa | sha256\:bb |" in text


def _run_on_a_terminal(args: list[str], input_text: str, env: dict[str, str]) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal; what the terminal showed, and the exit."""
    leader, follower = pty.openpty()
    os.set_inheritable(follower, True)
    process = subprocess.Popen(
        [*COMMAND, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=follower,
        env=env | {"TERM": "xterm-256color", "COLUMNS": "120"},
        cwd=ROOT,
    )
    os.close(follower)
    assert process.stdin is not None
    process.stdin.write(input_text.encode())
    process.stdin.close()
    shown = bytearray()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            shown += data
        elif process.poll() is not None:
            break
    os.close(leader)
    if os.environ.get("SHOW_TTY"):
        Path(os.environ["SHOW_TTY"]).write_bytes(bytes(shown))
    return process.wait(timeout=30), shown.decode(errors="replace")


def test_terminal_draws_progress_and_a_summary_table_without_json(
    corpus: Corpus,
    source: LiveRegistry,
    destination: LiveRegistry,
    docker_config: Path,
) -> None:
    """On a TTY: a live progress display and an end table, and not one JSON log line."""
    code, shown = _run_on_a_terminal(
        ["copy", "--specs", "-"],
        _specs(corpus, source, destination, "tty"),
        cli_env(docker_config),
    )
    assert code == 0, shown[-3000:]
    total = len(corpus.images)
    assert f"{total}/{total}" in shown  # images done of total
    assert "ETA" in shown and "/s" in shown  # rate and time remaining
    assert "\x1b[" in shown  # drawn in place with terminal control sequences
    assert "github-org-backup copy: succeeded" in shown
    assert "images copied" in shown
    assert '{"' not in shown and '"event"' not in shown


def _typed_report() -> RunReport:
    registry = Registry("ghcr.io")
    app = Repository(registry, "acme/app")
    backup = Repository(Registry("backup.example"), "ghcr/acme/app")
    images = (
        ImageResult(
            Reference(app, "1.0", "sha256:" + "a" * 64),
            Reference(backup, "1.0"),
            "sha256:" + "a" * 64,
            "copied",
            None,
            0.5,
            "application/vnd.oci.image.index.v1+json",
            900,
        ),
        ImageResult(Reference(app, "2.0"), Reference(backup, "2.0"), None, "failed", "HTTP 500"),
    )
    return RunReport(
        Counts(1, 0, 1, 4, 2, 1, 3, 123456, 2.25),
        images,
        {"ghcr.io": 10},
        discovery=Discovery(3, 1, 7, 4990, False, "gone", "used", 2, 0, 1, 2),
        packages=(
            PackageResult("app", "discovered", 2),
            PackageResult("web", "failed", error="HTTP 404"),
        ),
        history=HistoryOutcome("20261129T171538.123Z", (MovedTag("acme/app:1.0", "x", "y"),)),
        prune=Prune(("acme/app:0.9",)),
    )


def test_the_summaries_show_the_typed_report() -> None:
    """The job summary and the terminal table show the typed report's counts in a fixed order,
    its failures (discovery first) and its moved tags; a prune that refused shows no count."""
    assert outcome(_typed_report()) == Outcome(
        counts=(
            ("images copied", "1"),
            ("images already current", "0"),
            ("images failed", "1"),
            ("packages", "3"),
            ("packages failed", "1"),
            ("blobs copied", "4"),
            ("blobs mounted", "2"),
            ("tags moved", "1"),
            ("tags pruned", "1"),
            ("bytes copied", "120.6 KiB"),
            ("duration", "2.2 s"),
        ),
        failures=(
            ("discovery", "gone"),
            ("web", "HTTP 404"),
            ("backup.example/ghcr/acme/app:2.0", "HTTP 500"),
        ),
        moved=(("acme/app:1.0", "x", "y"),),
    )
    refused = RunReport(Counts(), prune=Prune(None))
    assert [label for label, _ in outcome(refused).counts] == [
        "images copied",
        "images already current",
        "images failed",
        "blobs copied",
        "blobs mounted",
        "bytes copied",
        "duration",
    ]
    assert refused.to_json()["summary"]["tags_pruned"] is None
    assert "pruned" not in refused.to_json()
