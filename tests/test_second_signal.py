"""A second SIGINT or SIGTERM cuts the grace period short: the run aborts at once, exit 143,
nothing partial is tagged, and the report says it was interrupted."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LiveRegistry
from tests.harness.clirun import ROOT, cli_env
from tests.harness.faultproxy import CHUNK, FaultProxy
from tests.harness.images import Corpus, generate_corpus
from tests.harness.scenarios import judge, specs_through

pytestmark = pytest.mark.integration

GRACE_S = 120  # far longer than the test waits: only the second signal can end the run early
STOP_CEILING_S = 20


@pytest.fixture(scope="module")
def corpus(source: LiveRegistry) -> Corpus:
    corpus = generate_corpus(
        repositories=2,
        tags=1,
        platforms=("linux/amd64",),
        prefix=f"twice{random.randrange(10**6)}",
        shared_layer_size=300_000,
        unique_layer_size=400_000,
        artifacts=False,
    )
    source.pusher().push(corpus)
    return corpus


@pytest.fixture
def proxies(source: LiveRegistry, destination: LiveRegistry) -> Iterator[tuple[FaultProxy, ...]]:
    # 8 KiB/s: a layer in flight would need about 40 s to finish on its own.
    src = FaultProxy(source.url, bandwidth_bps=8 * 2**10).start()
    dst = FaultProxy(destination.url).start()
    yield src, dst
    src.bandwidth_bps = None
    src.stop()
    dst.stop()


def _docker_config(directory: Path, pairs: list[tuple[FaultProxy, LiveRegistry]]) -> Path:
    import base64

    auths = {
        p.host: {"auth": base64.b64encode(f"{r.username}:{r.password}".encode()).decode()}
        for p, r in pairs
    }
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps({"auths": auths}))
    return directory


@pytest.mark.parametrize(
    ("first", "second"),
    [(signal.SIGTERM, signal.SIGINT), (signal.SIGINT, signal.SIGINT)],
    ids=["term-then-int", "int-then-int"],
)
def test_a_second_signal_aborts_at_once_and_writes_the_report(
    first: signal.Signals,
    second: signal.Signals,
    corpus: Corpus,
    proxies: tuple[FaultProxy, FaultProxy],
    source: LiveRegistry,
    destination: LiveRegistry,
    tmp_path: Path,
) -> None:
    src, dst = proxies
    config = _docker_config(tmp_path / "docker", [(src, source), (dst, destination)])
    prefix = f"cut{random.randrange(10**6)}"
    specs, report = tmp_path / "specs.json", tmp_path / "report.json"
    specs.write_text(specs_through(corpus, src, dst, prefix))
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "github_org_backup", "copy"),
            *("--specs", str(specs), "--report", str(report)),
            *("--grace-period", str(GRACE_S), "--log-format", "json"),
        ],
        cwd=ROOT,
        env=cli_env(config),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while src.blob_bytes_served < CHUNK and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)
        assert src.blob_bytes_served >= CHUNK, "no layer started streaming within 120 s"
        process.send_signal(first)
        time.sleep(1.5)
        assert process.poll() is None, "the first signal alone must leave the grace period"
        sent = time.monotonic()
        process.send_signal(second)
        _, stderr = process.communicate(timeout=STOP_CEILING_S + 10)
        elapsed = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 143, stderr[-2000:]
    assert elapsed < STOP_CEILING_S, f"took {elapsed:.1f} s after the second signal"
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    names = [e["event"] for e in events]
    assert names.count("signal_received") == 1
    cut = [e for e in events if e["event"] == "grace_period_cut"]
    assert len(cut) == 1 and cut[0]["signal"] == second.name
    document = json.loads(report.read_text())
    assert document["summary"]["interrupted"] is True
    errors = [i["error"] for i in document["images"] if i["status"] == "failed"]
    assert errors and any("second signal" in e for e in errors), errors
    assert all("second signal" in e or "not started" in e for e in errors), errors
    good, corrupt = judge(corpus, destination.walker(), prefix)
    assert corrupt == 0
    assert good == document["summary"]["images_copied"] + document["summary"]["images_skipped"]
