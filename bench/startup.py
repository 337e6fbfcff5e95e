"""Start-up: bare `python -c pass` against `--version` and `copy --help` of each build."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

from bench.builds import build_env
from bench.rig import CURRENT, Build

BARE = "python -c pass"
COMMANDS = {"--version": ["--version"], "copy --help": ["copy", "--help"]}


@dataclass
class Startup:
    runs: int
    seconds: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # (build, command)

    def median(self, build: str, command: str) -> float:
        return statistics.median(self.seconds[(build, command)])

    def excess(self, build: str, command: str) -> float:
        return self.median(build, command) - self.median("", BARE)


def _time(command: list[str], build: Build) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        command,
        env=build_env(build),
        cwd=build.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    return elapsed


def startup_round(builds: list[Build], runs: int) -> Startup:
    """``runs`` rounds; each times every command once, in an order rotated by the round,
    after one unmeasured round."""
    cases: list[tuple[str, str, list[str], Build]] = [
        ("", BARE, [sys.executable, "-c", "pass"], CURRENT)
    ] + [
        (b.name, label, [sys.executable, "-m", "github_org_backup", *arguments], b)
        for b in builds
        for label, arguments in COMMANDS.items()
    ]
    for _name, _label, command, build in cases:  # unmeasured: bytecode gets compiled here
        _time(command, build)
    result = Startup(runs)
    for n in range(runs):
        turn = n % len(cases)
        for name, label, command, build in cases[turn:] + cases[:turn]:
            result.seconds.setdefault((name, label), []).append(_time(command, build))
    return result
