"""Prometheus metrics at the end of a run: to a real Pushgateway, and as a textfile."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import CliRunner, LiveRegistry
from tests.harness.images import generate_corpus
from tests.harness.registry import free_port, require_binary

pytestmark = pytest.mark.integration


def _start_pushgateway(log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A Pushgateway on a free loopback port, once it answers /-/ready.

    Another process may take the free port before the gateway binds it: then it exits saying
    so, and it starts again on another port. Start-up may be slow on a loaded machine, so the
    wait is long; a gateway that exits for another reason, or never gets ready, fails here."""
    binary = require_binary("prometheus-pushgateway", "prometheus-pushgateway")
    for _ in range(3):
        url = f"http://127.0.0.1:{free_port()}"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [binary, f"--web.listen-address={url.removeprefix('http://')}"],
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=5):
                    return process, url
            except OSError:
                time.sleep(0.05)
        if process.poll() is None:
            process.kill()
            process.wait()
            raise RuntimeError(f"pushgateway on {url} not ready after 60 s")
        text = log_path.read_text(errors="replace")
        if "address already in use" not in text:
            raise RuntimeError(f"pushgateway exited: {text[-2000:]}")
    raise RuntimeError("pushgateway found no free port in 3 tries")


@pytest.fixture(scope="module")
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    process, url = _start_pushgateway(tmp_path_factory.mktemp("pushgateway") / "log")
    yield url
    process.terminate()
    process.wait(10)


def metric(text: str, name: str, **labels: str) -> float:
    """The value of the sample ``name`` whose labels include ``labels``."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return float(sample.value)
    raise AssertionError(f"{name} {labels} not in metrics")


def test_metrics_reach_the_pushgateway_and_the_textfile(
    cli: CliRunner,
    source: LiveRegistry,
    destination: LiveRegistry,
    pushgateway: str,
    namespace: str,
    tmp_path: Path,
) -> None:
    """A successful run sets every metric; a failed one keeps the last success timestamp."""
    corpus = generate_corpus(repositories=1, tags=2, prefix=namespace)
    source.pusher().push(corpus)
    image = corpus.images[0]
    textfile = tmp_path / "backup.prom"
    args = [
        "copy",
        f"http://{source.host}/{image.repository}:{image.tag}",
        f"http://{destination.host}/metrics/{image.repository}:{image.tag}",
        "--pushgateway",
        pushgateway,
        "--metrics-file",
        str(textfile),
    ]
    assert cli(*args).returncode == 0
    pushed = urllib.request.urlopen(f"{pushgateway}/metrics").read().decode()
    written = textfile.read_text()
    for text in (pushed, written):
        assert metric(text, "github_org_backup_images", outcome="copied") == 1
        assert metric(text, "github_org_backup_blobs", outcome="copied") > 0
        assert metric(text, "github_org_backup_bytes_copied") > 0
        assert metric(text, "github_org_backup_duration_seconds") > 0
        assert metric(text, "github_org_backup_last_run_success") == 1
    assert metric(pushed, "github_org_backup_bytes_copied", job="github-org-backup", shard="all")
    success = metric(written, "github_org_backup_last_success_timestamp_seconds")
    assert abs(success - time.time()) < 60

    failing = [
        "copy",
        f"http://{source.host}/{image.repository}:missing",
        f"http://{destination.host}/metrics/x:1",
        "--pushgateway",
        pushgateway,
        "--metrics-file",
        str(textfile),
    ]
    assert cli(*failing).returncode == 1
    pushed = urllib.request.urlopen(f"{pushgateway}/metrics").read().decode()
    written = textfile.read_text()
    for text in (pushed, written):
        assert metric(text, "github_org_backup_images", outcome="failed") == 1
        assert metric(text, "github_org_backup_last_run_success") == 0
        assert metric(text, "github_org_backup_last_success_timestamp_seconds") == pytest.approx(
            success, abs=5
        )
