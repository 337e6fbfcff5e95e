"""Run the CLI: as a subprocess (run_cli), for signals, git and the entry point itself, or in
this process (run_in_process), for usage, help and configuration."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


@dataclass
class CliResult:
    """What an in-process run of the CLI gave: its exit code and its output."""

    returncode: int
    stdout: str
    stderr: str


def run_in_process(
    argv: list[str], env: dict[str, str] | None = None, stdin: str = ""
) -> CliResult:
    """``cli.main(argv)`` in this process: the environment replaced by ``env`` (nothing of
    GitHub's otherwise), stdin, stdout and stderr captured, the exit code returned. argparse's
    own exits (usage errors, --help) give their code as a process would.

    main() configures structlog for the whole process: here without cached loggers, and reset
    afterwards, so later tests (structlog.testing.capture_logs) see the defaults."""
    from unittest import mock

    import structlog

    from github_org_backup import cli

    base = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    out, err = io.StringIO(), io.StringIO()
    saved_env = dict(os.environ)
    saved = sys.stdin, sys.stdout, sys.stderr
    os.environ.clear()
    os.environ.update(base | (env or {}))
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin.encode()))
    sys.stdout, sys.stderr = out, err
    configure = structlog.configure

    def uncached(**kwargs: Any) -> None:
        configure(**(kwargs | {"cache_logger_on_first_use": False}))

    try:
        try:
            with mock.patch.object(structlog, "configure", uncached):
                code = cli.main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
        os.environ.clear()
        os.environ.update(saved_env)
        structlog.reset_defaults()
    return CliResult(code, out.getvalue(), err.getvalue())
