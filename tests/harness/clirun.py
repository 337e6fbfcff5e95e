"""Run the real CLI as a subprocess, with a chosen docker config and nothing of GitHub's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMMAND = [sys.executable, "-m", "github_org_backup"]


def cli_env(docker_config: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    return env | {"DOCKER_CONFIG": str(docker_config), "PYTHONPATH": str(ROOT)} | (extra or {})


def run_cli(
    args: list[str],
    docker_config: Path,
    input_text: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args],
        input=input_text,
        capture_output=True,
        text=True,
        env=cli_env(docker_config, env),
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )
