"""A large blob streams through in bounded memory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import LiveRegistry
from tests.harness.bigblob import push_big_image
from tests.harness.clirun import ROOT
from tests.harness.registry import require_binary

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
    # GNU time reports the CLI's own peak RSS. (os.wait4 on a child of this process would
    # count the pytest process's pages that a vfork-spawned child shares before exec.)
    result = subprocess.run(
        [
            require_binary("time", "time"),
            "-f",
            "%M",
            sys.executable,
            "-m",
            "github_org_backup",
            "copy",
            f"http://{source.host}/{repository}:1",
            f"http://{destination.host}/big/{repository}:1",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    peak_kib = int(result.stderr.strip().splitlines()[-1])
    print(f"peak RSS {peak_kib / 1024:.1f} MiB for a {SIZE / 2**20:.0f} MiB blob")
    events = [line for line in result.stderr.splitlines() if '"level": "warning"' in line]
    assert peak_kib < RSS_LIMIT_KIB, events[-20:]
    walked = destination.walker().walk(f"big/{repository}", "1")
    assert (walked.digest, walked.problems) == (manifest.digest, [])
