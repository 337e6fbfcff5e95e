#!/usr/bin/env python3
"""Time the repos command on N small repositories, cold and warm, and count the bytes served.

Starts the test harness's git server (`git http-backend` behind Basic auth, on loopback) and
GitHub stand-in, creates N repositories of a few commits each, then runs
`github-org-backup repos` into an empty directory (cold), again with nothing changed (warm),
and again after one commit in every tenth repository. Not a test.

    python3 bench/repos.py                    # 200 repositories, --concurrency 4 and 8
    python3 bench/repos.py --repos 50 --concurrency 4
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.harness.clirun import COMMAND, cli_env  # noqa: E402
from tests.harness.github_repos import GitHubReposStandIn, StandInRepo  # noqa: E402
from tests.harness.gitserver import GitServer  # noqa: E402

ORG = "bench"


def run(
    server: GitServer,
    github: GitHubReposStandIn,
    token: str,
    dest: Path,
    work: Path,
    concurrency: int,
) -> dict[str, object]:
    server.reset_counters()
    report = work / "report.json"
    env = cli_env(work, {"GITHUB_TOKEN": token, "GITHUB_API_URL": github.url})
    args = [
        "repos",
        "--org",
        ORG,
        "--dest",
        str(dest),
        "--report",
        str(report),
        "--concurrency",
        str(concurrency),
        "--log-level",
        "warning",
    ]
    started = time.monotonic()
    done = subprocess.run(
        [*COMMAND, *args], env=env, cwd=ROOT, capture_output=True, text=True, check=False
    )
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"run failed ({done.returncode}): {done.stderr[-2000:]}")
    summary = json.loads(report.read_text())["summary"]
    return {
        "seconds": round(seconds, 2),
        "bytes_served": server.bytes_sent,
        "git_requests": len(server.requests),
        "copied": summary["repositories_copied"],
        "unchanged": summary["repositories_unchanged"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=200)
    parser.add_argument("--concurrency", type=int, action="append")
    options = parser.parse_args()
    token = "ghp_" + secrets.token_hex(18)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        server = GitServer(work / "server", tokens={token}).start()
        github = GitHubReposStandIn(server.url, tokens={token: "bench-bot"}).start()
        names = [f"repo{i:04}" for i in range(options.repos)]
        for name in names:
            server.create(ORG, name)
            for n in range(3):
                server.commit(ORG, name, "main", {f"f{n}.txt": secrets.token_hex(512)}, f"c{n}")
            server.commit(ORG, name, "dev", {"dev.txt": "dev"}, "dev")
        github.owners[ORG] = [StandInRepo(name) for name in names]
        version = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout
        print(
            f"{options.repos} repositories, 2 branches and 4 commits each; "
            f"git {version.split()[-1]}, {os.cpu_count()} CPUs"
        )
        for concurrency in options.concurrency or [4, 8]:
            dest = work / f"mirrors-{concurrency}"
            cold = run(server, github, token, dest, work, concurrency)
            warm = run(server, github, token, dest, work, concurrency)
            for name in names[::10]:
                server.commit(ORG, name, "main", {"new.txt": secrets.token_hex(64)}, "new")
            changed = run(server, github, token, dest, work, concurrency)
            print(f"--concurrency {concurrency}: cold {cold}")
            print(f"--concurrency {concurrency}: warm, nothing changed {warm}")
            print(f"--concurrency {concurrency}: warm, 10% changed {changed}")
        github.stop()
        server.stop()


if __name__ == "__main__":
    main()
