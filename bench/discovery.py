"""Discovery of a large organisation against the GitHub stand-in, cold and warm.

The stand-in answers every request ``delay`` later, as a distant API would. Each run is the
real `registry` command into an OCI layout, with every tag excluded so that only discovery,
the snapshot and the discovery cache cost anything. Requests, 304s and the requests that
counted against the primary rate limit come from the stand-in's own counters.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.harness.clirun import COMMAND, cli_env
from tests.harness.github_api import GitHubStandIn, StandInPackage

ORG = "bench"
TOKEN = "ghp_bench"  # a stand-in's token, never a real one


@dataclass
class DiscoveryMeasure:
    name: str
    seconds: float
    requests: int
    not_modified: int
    counted: int
    pages: int  # the organisation's pages: what a cold run must read
    cache_bytes: int


def _digest(n: int) -> str:
    return f"sha256:{n:064x}"


def build_org(packages: int, big: int, big_versions: int) -> list[StandInPackage]:
    """``big`` packages of ``big_versions`` CI builds (one tagged index and two untagged
    children each), the rest with one release; newest first, as GitHub lists them."""
    found = []
    serial = 0
    for n in range(packages):
        count = big_versions if n < big else 3
        versions: list[tuple[str, list[str]]] = []
        for v in range(count):
            serial += 1
            versions.append((_digest(serial), [f"build-{v}"] if v % 3 == 0 else []))
        found.append(StandInPackage(f"service-{n:04d}", versions[::-1], id=n))
    return found


def change_a_day_of_ci(org: list[StandInPackage], big: int) -> None:
    """Each big package gets a new build that takes ``latest``; 20 small packages a release."""
    for n, package in enumerate(org[: big + 20]):
        digest = _digest(10**12 + n)
        package.versions.insert(0, (digest, ["latest", f"build-new-{n}"]))
        package.updated_at = "2026-06-01T00:00:00Z"


def pages(org: list[StandInPackage]) -> int:
    return -(-len(org) // 100) + sum(max(1, -(-len(p.versions) // 100)) for p in org)


def run_once(
    name: str, api: GitHubStandIn, dest: Path, work: Path, org: list[StandInPackage]
) -> DiscoveryMeasure:
    before = (len(api.requests), api.not_modified, api.counted)
    report = work / f"{name.replace(' ', '-')}.json"
    env = cli_env(
        work,
        {
            "GITHUB_TOKEN": TOKEN,
            "GITHUB_API_URL": api.url,
            "SOURCE_REGISTRY": "http://127.0.0.1:9",  # nothing is copied
        },
    )
    args = [
        "registry",
        "--org",
        ORG,
        "--dest",
        f"oci:{dest}",
        "--exclude-tag",
        ".*",
        "--allow-empty",  # nothing is kept on purpose: exit 0, not 3
        "--report",
        str(report),
        "--log-level",
        "warning",
    ]
    started = time.monotonic()
    done = subprocess.run([*COMMAND, *args], env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"discovery run {name} failed:\n{done.stderr[-3000:]}")
    summary = json.loads(report.read_text())["summary"]
    if summary.get("discovery_error"):
        raise SystemExit(f"discovery run {name}: {summary['discovery_error']}")
    cache_bytes = _cache_bytes(dest)
    return DiscoveryMeasure(
        name,
        seconds,
        len(api.requests) - before[0],
        api.not_modified - before[1],
        api.counted - before[2],
        pages(org),
        cache_bytes,
    )


def _cache_bytes(layout: Path) -> int:
    """The size of the discovery cache's layers, found through the layout's index."""
    blobs = layout / "blobs" / "sha256"
    for entry in json.loads((layout / "index.json").read_text())["manifests"]:
        name = (entry.get("annotations") or {}).get("org.opencontainers.image.ref.name", "")
        if name.endswith("discovery-cache"):
            manifest = json.loads((blobs / entry["digest"].split(":")[1]).read_text())
            return sum(int(layer["size"]) for layer in manifest["layers"])
    return 0


def discovery_round(
    work: Path, *, packages: int, big: int, big_versions: int, delay_s: float
) -> list[DiscoveryMeasure]:
    org = build_org(packages, big, big_versions)
    api = GitHubStandIn(owners={ORG: org}, tokens={TOKEN: {"read:packages"}}, delay_s=delay_s)
    api.remaining = 10**9  # the bench measures the count; the stand-in never refuses
    api.start()
    dest = work / "discovery-layout"
    try:
        results = [run_once("cold", api, dest, work, org)]
        results.append(run_once("warm, unchanged", api, dest, work, org))
        change_a_day_of_ci(org, big)
        results.append(run_once("warm, a day of CI later", api, dest, work, org))
    finally:
        api.stop()
    return results
