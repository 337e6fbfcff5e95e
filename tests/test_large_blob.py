"""A large blob streams through in bounded memory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, LiveRegistry
from tests.harness.bigblob import push_big_image

pytestmark = pytest.mark.integration

SIZE = int(os.environ.get("LARGE_BLOB_MIB", "512")) * 2**20
RSS_LIMIT_KIB = 150 * 1024


def test_512_mib_blob_streams_under_150_mib_rss(
    source: LiveRegistry,
    destination: LiveRegistry,
    docker_config: Path,
    namespace: str,
    tmp_path: Path,
) -> None:
    """Peak RSS of the CLI copying one 512 MiB layer stays under 150 MiB; digests are equal."""
    repository = f"{namespace}/big"
    manifest = push_big_image(source.pusher(), repository, "1", tmp_path / "layer", SIZE)
    env = os.environ | {"DOCKER_CONFIG": str(docker_config), "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "backup",
            "copy",
            f"http://{source.host}/{repository}:1",
            f"http://{destination.host}/big/{repository}:1",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(process.pid, 0)
    stderr = process.stderr.read().decode() if process.stderr else ""
    assert os.waitstatus_to_exitcode(status) == 0, stderr[-2000:]
    print(f"peak RSS {usage.ru_maxrss / 1024:.1f} MiB for a {SIZE / 2**20:.0f} MiB blob")
    events = [line for line in stderr.splitlines() if '"level": "warning"' in line]
    assert usage.ru_maxrss < RSS_LIMIT_KIB, events[-20:]
    walked = destination.walker().walk(f"big/{repository}", "1")
    assert (walked.digest, walked.problems) == (manifest.digest, [])
