#!/usr/bin/env python3
"""Time `repos --metadata` on an organisation of 50 repositories x 200 issues: cold, warm, edited.

Starts the test harness's git server (`git http-backend` behind Basic auth, on loopback) and
the GitHub stand-in for organisation metadata (`tests/harness/github_meta.py`), builds an
organisation of N small git repositories, each with issues and their comments, pull requests
with a review and a review comment, releases with an asset, labels and milestones, plus the
organisation's members, teams, a hook, Actions variables and secrets and a ruleset. Then runs
`github-org-backup repos --org bench --metadata` into an empty directory (cold), again with
nothing changed (warm), and again after a few edits (issues edited, comments added, one
release added). Each run's wall time, its requests as the stand-in saw them (all, counted
against the primary rate limit, 304) and as the run's report says (`summary.metadata`), the
bytes stored (`du` of `metadata/`, its `.git` included, and of `assets/`) and the documents
written. A small organisation (6 repositories, 300 issues in all) is timed cold as well.

The run paces its API requests at 60/850 s (GitHub's guidance is 900 a minute); the table's
"paced floor" is the requests the run made times that interval. `--delay-ms` answers every
API request that much later, as a distant API would (the storage host and the git server are
not delayed). Not a test.

    python3 bench/metadata.py                      # 50 x 200, then 6 x 50; Markdown and JSON
    python3 bench/metadata.py --delay-ms 20
    python3 bench/metadata.py --repos 5 --issues 20 --small-repos 2   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.harness.clirun import COMMAND, cli_env  # noqa: E402
from tests.harness.github_meta import GitHubOrgStandIn  # noqa: E402
from tests.harness.gitserver import GitServer  # noqa: E402

ORG = "bench"
REQUEST_INTERVAL_S = 60 / 850  # the run's pacing (github_org_backup.metadata.run)


@dataclass
class Shape:
    """What each repository of the organisation holds."""

    repos: int
    issues: int
    comments_per_issue: int = 2
    pulls: int = 20
    releases: int = 2
    asset_bytes: int = 64 * 1024
    milestones: int = 2


@dataclass
class Rig:
    server: GitServer
    github: GitHubOrgStandIn
    token: str
    work: Path
    names: list[str]
    answered: list[tuple[str, int]] = field(default_factory=list)  # ("METHOD path", status)

    def record_statuses(self) -> None:
        """Keep every API answer's status beside its call (the stand-in keeps the calls)."""
        answer: Callable[[str, str, dict[str, str], bytes], tuple[int, bytes, dict[str, str]]]
        answer = self.github._answer

        def recorded(
            method: str, raw: str, headers: dict[str, str], body: bytes
        ) -> tuple[int, bytes, dict[str, str]]:
            found = answer(method, raw, headers, body)
            self.answered.append((f"{method} {raw}", found[0]))
            return found

        self.github._answer = recorded  # type: ignore[method-assign]

    def reset(self) -> None:
        self.github.reset_counts()
        self.server.reset_counters()
        self.answered.clear()


def build(work: Path, shape: Shape, delay_ms: float) -> Rig:
    token = "ghp_" + secrets.token_hex(18)
    server = GitServer(work / "server", tokens={token}).start()
    github = GitHubOrgStandIn(server.url, tokens={token: "backup-bot"}).start()
    gh = github
    gh.org(ORG, name="Bench Corp")
    names = [f"repo{i:03}" for i in range(shape.repos)]
    for name in names:
        full = f"{ORG}/{name}"
        server.create(ORG, name)
        server.commit(ORG, name, "main", {"src.txt": secrets.token_hex(256)}, "second")
        meta = gh.populate(
            full,
            issues=shape.issues,
            comments_per_issue=shape.comments_per_issue,
            pulls=shape.pulls,
            releases=shape.releases,
            asset_bytes=shape.asset_bytes,
        )
        gh.label(full, "documentation", "0075ca", "Improvements or additions to documentation")
        for m in range(1, shape.milestones + 1):
            gh.milestone(full, f"v{m}.0", description=f"Milestone {m}")
        for number in range(1, shape.issues + 1, 10):  # one issue in ten has a milestone
            meta.issues[number].milestone = 1 + number % max(shape.milestones, 1)
    members = [f"member{i:02}" for i in range(20)]
    gh.add_members(ORG, *members)
    for t, slug in enumerate(("platform", "frontend", "security")):
        gh.team(
            ORG,
            slug,
            members=members[t * 5 : t * 5 + 6],
            repos={f"{ORG}/{n}": ("push", "pull", "maintain")[t] for n in names[t::3]},
        )
    gh.hook(ORG, "https://hooks.example.com/ci", secret=secrets.token_hex(16))
    for name, value in (("REGION", "eu-west-1"), ("TIER", "prod"), ("OWNER", "platform")):
        gh.variable(ORG, name, value)
    for name in ("DEPLOY_KEY", "NPM_TOKEN"):
        gh.secret(ORG, name)
    gh.ruleset(ORG, "protect-main")
    github.delay_s = delay_ms / 1000
    rig = Rig(server, github, token, work, names)
    rig.record_statuses()
    return rig


def edit(rig: Rig, shape: Shape) -> str:
    """10 issues edited, 5 comments added (on other issues), one release with an asset added."""
    gh = rig.github
    for i in range(10):
        number = 1 + (2 + i) % shape.issues
        name = rig.names[i % len(rig.names)]
        gh.edit_issue(f"{ORG}/{name}", number, body=f"Edited: what happened in issue {number}.")
    for i in range(5):
        number = 1 + (40 + i) % shape.issues
        gh.comment(f"{ORG}/{rig.names[-1 - i % len(rig.names)]}", number, "A new comment.")
    gh.add_release(
        f"{ORG}/{rig.names[0]}",
        "v2.0.0",
        assets={"tool-2.0.0.tar.gz": secrets.token_bytes(shape.asset_bytes)},
    )
    return "10 issues edited, 5 comments added, 1 release (1 asset) added"


def wait_for_gc(store: Path, limit_s: float = 600) -> float:
    """Wait while git's automatic gc, which a commit of many loose objects starts detached,
    still runs in the store: its sizes are measured after it, and it does not run on into
    the next run. The seconds waited."""
    started = time.monotonic()
    time.sleep(1)
    lock = store / ".git" / "gc.pid"
    while (lock.exists() or lock.with_name("gc.pid.lock").exists()) and (
        time.monotonic() - started < limit_s
    ):
        time.sleep(0.2)
    return round(time.monotonic() - started - 1, 1)


def count_objects(store: Path) -> dict[str, int]:
    """`git count-objects -v` of the store: loose objects and packs."""
    out = subprocess.run(
        ["git", "-C", str(store), "count-objects", "-v"], capture_output=True, text=True
    ).stdout
    found: dict[str, int] = {}
    for line in out.splitlines():
        key, _, value = line.partition(": ")
        if value.strip().isdigit():
            found[key] = int(value)
    return found


def du(path: Path, apparent: bool = False) -> int:
    if not path.exists():
        return 0
    flag = "-sb" if apparent else "-sB1"
    out = subprocess.run(["du", flag, str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def run(rig: Rig, dest: Path, label: str) -> dict[str, Any]:
    rig.reset()
    report = rig.work / f"report-{label.replace(' ', '-').replace(',', '')}.json"
    env = cli_env(rig.work, {"GITHUB_TOKEN": rig.token, "GITHUB_API_URL": rig.github.url})
    args = [
        "repos",
        "--org",
        ORG,
        "--dest",
        str(dest),
        "--metadata",
        "--report",
        str(report),
        "--log-level",
        "warning",
    ]
    started = time.monotonic()
    done = subprocess.run(
        [*COMMAND, *args], env=env, cwd=ROOT, capture_output=True, text=True, check=False
    )
    seconds = time.monotonic() - started
    gh = rig.github
    counted_calls = [(call, status) for call, status in rig.answered if status != 304]
    listing = [(c, s) for c, s in rig.answered if c.split("?")[0] == f"GET /orgs/{ORG}/repos"]
    result: dict[str, Any] = {
        "run": label,
        "exit": done.returncode,
        "seconds": round(seconds, 2),
        "standin_requests": len(gh.calls),
        "standin_counted": gh.counted,
        "standin_not_modified": gh.not_modified,
        "standin_listing_requests": len(listing),
        "standin_listing_counted": sum(1 for _, s in listing if s != 304),
        "storage_requests": len(gh.storage_received),
        "endpoints": endpoints(rig.answered),
        "git_requests": len(rig.server.requests),
    }
    if done.returncode != 0 or not report.is_file():
        result["stderr_tail"] = done.stderr[-4000:]
        result["non_304_calls"] = counted_calls
        return result
    summary = json.loads(report.read_text())["summary"]
    meta = summary["metadata"]
    store = dest / ORG / "metadata"
    result["gc_wait_s"] = wait_for_gc(store)
    result["git_objects"] = count_objects(store)
    result |= {
        "report_requests": meta["github_requests"],
        "report_not_modified": meta["github_requests_not_modified"],
        "report_counted": meta["github_requests_counted"],
        "paced_floor_s": round(meta["github_requests"] * REQUEST_INTERVAL_S, 1),
        "documents_written": sum(meta["documents_written"].values()),
        "documents_by_kind": meta["documents_written"],
        "assets_downloaded": meta["assets_downloaded"],
        "asset_bytes_downloaded": meta["asset_bytes_downloaded"],
        "parts_failed": meta["parts_failed"],
        "commit": meta["commit"],
        "repositories_copied": summary.get("repositories_copied"),
        "repositories_unchanged": summary.get("repositories_unchanged"),
        "metadata_du_bytes": du(store),
        "metadata_git_du_bytes": du(store / ".git"),
        "metadata_apparent_bytes": du(store, apparent=True),
        "assets_du_bytes": du(dest / ORG / "assets"),
        "assets_apparent_bytes": du(dest / ORG / "assets", apparent=True),
        "json_files_in_store": sum(
            1 for p in store.rglob("*.json") if ".git" not in p.relative_to(store).parts
        ),
    }
    if gh.counted and label.startswith("warm"):
        result["non_304_calls"] = counted_calls
    return result


def endpoints(answered: list[tuple[str, int]]) -> dict[str, int]:
    """Requests by path shape (numbers as {n}, query dropped, page kept) and status."""
    found: Counter[str] = Counter()
    for call, status in answered:
        method, _, raw = call.partition(" ")
        path, _, query = raw.partition("?")
        shape = "/".join("{n}" if p.isdigit() else p for p in path.split("/"))
        shape = re.sub(r"/repos/[^/]+/[^/]+", "/repos/{o}/{r}", shape)
        page = re.search(r"(?:^|&)page=(\d+)", query)
        found[f"{method} {shape}{f' page {page[1]}' if page else ''} -> {status}"] += 1
    return dict(sorted(found.items()))


def mib(n: int) -> str:
    return f"{n / 2**20:.1f}"


def split(row: dict[str, Any], total: str, listing: str) -> str:
    """The stand-in's figure as metadata + the mirrors' repository listing."""
    return f"{row[total] - row[listing]:,} + {row[listing]}"


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| run | wall s | requests: stand-in (metadata + listing) / report "
        "| counted: stand-in (metadata + listing) / report "
        "| 304 (stand-in / report) | paced floor s | documents written | assets downloaded "
        "| metadata/ MiB (.git) | assets/ MiB |"
    )
    lines = [head, "|" + " --- |" * 10]
    for r in rows:
        if r["exit"] != 0 and "report_requests" not in r:
            lines.append(f"| {r['run']} | {r['seconds']} | failed, exit {r['exit']} |" + " |" * 7)
            continue
        lines.append(
            f"| {r['run']} | {r['seconds']} "
            f"| {split(r, 'standin_requests', 'standin_listing_requests')} "
            f"/ {r['report_requests']:,} "
            f"| {split(r, 'standin_counted', 'standin_listing_counted')} "
            f"/ {r['report_counted']:,} "
            f"| {r['standin_not_modified']:,} / {r['report_not_modified']:,} "
            f"| {r['paced_floor_s']} | {r['documents_written']:,} | {r['assets_downloaded']} "
            f"| {mib(r['metadata_du_bytes'])} ({mib(r['metadata_git_du_bytes'])}) "
            f"| {mib(r['assets_du_bytes'])} |"
        )
    return "\n".join(lines)


def describe(shape: Shape) -> str:
    return (
        f"{shape.repos} repositories x {shape.issues} issues ({shape.comments_per_issue} "
        f"comments each), {shape.pulls} pulls (a review and a review comment each), "
        f"{shape.releases} releases of one {shape.asset_bytes // 1024} KiB asset, 3 labels, "
        f"{shape.milestones} milestones"
    )


def versions() -> dict[str, str]:
    def out(*cmd: str) -> str:
        return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT).stdout.strip()

    dirty = out("git", "status", "--porcelain", "--untracked-files=no", "github_org_backup")
    return {
        "commit": out("git", "rev-parse", "--short", "HEAD"),
        "package_modified_in_checkout": str(bool(dirty)),
        "python": platform.python_version(),
        "git": out("git", "--version").split()[-1],
        "cpus": str(os.cpu_count()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repos", type=int, default=50)
    parser.add_argument("--issues", type=int, default=200, help="issues per repository")
    parser.add_argument("--pulls", type=int, default=20, help="pull requests per repository")
    parser.add_argument("--small-repos", type=int, default=6, help="0: no small organisation")
    parser.add_argument("--small-issues", type=int, default=50, help="issues per repository")
    parser.add_argument("--delay-ms", type=float, default=0, help="each API answer this late")
    parser.add_argument("--json", type=Path, help="default bench/work/metadata-<delay>ms.json")
    options = parser.parse_args()
    out_json = options.json or ROOT / "bench" / "work" / f"metadata-{options.delay_ms:g}ms.json"
    big = Shape(options.repos, options.issues, pulls=options.pulls)
    small = Shape(options.small_repos, options.small_issues, pulls=3, releases=1)
    results: dict[str, Any] = {
        "versions": versions(),
        "delay_ms": options.delay_ms,
        "request_interval_s": REQUEST_INTERVAL_S,
        "shape": describe(big),
        "runs": [],
        "small": None,
    }
    print(f"versions: {results['versions']}; API delay {options.delay_ms:g} ms per request")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch) / "big"
        work.mkdir()
        started = time.monotonic()
        rig = build(work, big, options.delay_ms)
        print(f"{describe(big)}; built in {time.monotonic() - started:.0f} s", flush=True)
        dest = work / "backup"
        for label in ("cold", "warm, nothing changed"):
            results["runs"].append(run(rig, dest, label))
            print(json.dumps(results["runs"][-1]), flush=True)
        results["edits"] = edit(rig, big)
        results["runs"].append(run(rig, dest, "warm, after edits"))
        print(json.dumps(results["runs"][-1]), flush=True)
        rig.github.stop()
        rig.server.stop()

        if options.small_repos:
            work = Path(scratch) / "small"
            work.mkdir()
            rig = build(work, small, options.delay_ms)
            results["small_shape"] = describe(small)
            results["small"] = run(rig, work / "backup", "small org cold")
            print(json.dumps(results["small"]), flush=True)
            rig.github.stop()
            rig.server.stop()

    rows = results["runs"] + ([results["small"]] if results["small"] else [])
    print()
    print(f"{results['shape']}; API delay {options.delay_ms:g} ms; edits: {results.get('edits')}")
    if results["small"]:
        print(f"small org: {results['small_shape']}")
    print()
    print(table(rows))
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nJSON: {out_json}")
    failed = [r for r in rows if r["exit"] != 0]
    warm_counted = [r for r in results["runs"][1:2] if r.get("standin_counted")]
    for r in failed + warm_counted:
        print(f"\n{r['run']}: exit {r['exit']}, counted {r.get('standin_counted')}")
        for call, status in r.get("non_304_calls", [])[:200]:
            print(f"  {status} {call}")
        if r.get("stderr_tail"):
            print(r["stderr_tail"])


if __name__ == "__main__":
    main()
