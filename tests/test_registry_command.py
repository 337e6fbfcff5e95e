"""The registry command end to end: GitHub API stand-in, GHCR-like source, backup registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import CliRunner, LiveRegistry
from tests.harness.github_api import GitHubStandIn
from tests.harness.org import Org

pytestmark = pytest.mark.integration

EXPECTED = {
    "app": ["1.0.1", "1.1.2", "latest"],
    "team/api": ["2.0.10", "2.0.10-alpine", "main"],
    "team/tools/cli": ["0.1.0", "0.2.1", "edge"],
    "worker": ["3.4.5"],
}


def expected_tags(org: Org) -> dict[str, list[str]]:
    """The policy's tags, plus the signature of the kept worker:3.4.5 (app:1.0.0's is dropped)."""
    found = {package: list(tags) for package, tags in EXPECTED.items()}
    found["worker"].append(org.signature("worker", "3.4.5"))
    return {package: sorted(tags) for package, tags in found.items()}


def test_backup_holds_exactly_the_policy_tags_with_equal_digests(
    cli: CliRunner,
    org: Org,
    github: GitHubStandIn,
    destination: LiveRegistry,
    env: dict[str, str],
    tmp_path: Path,
    namespace: str,
) -> None:
    """Every package's kept tags arrive with source digests, nothing else; requests are counted."""
    report_path = tmp_path / "report.json"
    before = len(github.requests)
    result = cli(
        "registry",
        "--org",
        org.name,
        "--dest",
        f"http://{destination.host}/{namespace}",
        "--exclude-package",
        "legacy-*",
        "--report",
        str(report_path),
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    requests = github.requests[before:]
    summary = json.loads(report_path.read_text())["summary"]

    walker = destination.walker()
    copied = 0
    for package, tags in expected_tags(org).items():
        repository = f"{namespace}/{org.name}/{package}"
        assert walker.image_tags(repository) == sorted(tags)
        for tag in tags:
            walked = walker.walk(repository, tag)
            assert walked.problems == []
            assert walked.digest == org.packages[package][tag].digest
            copied += 1
    assert copied == summary["images_copied"] == 11

    package_pages = [r for r in requests if r.split("?")[0].endswith("/packages")]
    version_pages = [r for r in requests if "/versions" in r]
    assert len(package_pages) == 2
    assert len(version_pages) == 2 + 1 + 1 + 1
    assert summary["github_requests"] == len(requests) == 7
    assert any("/team%2Ftools%2Fcli/versions" in r for r in version_pages)
    assert summary["github_rate_limit_remaining"] == github.remaining
    print(
        f"\ne2e: {copied} tags copied, digests equal; GitHub requests {len(requests)} = "
        f"{len(package_pages)} package pages + {len(version_pages)} version pages"
    )

    rerun = cli(
        "registry",
        "--org",
        org.name,
        "--dest",
        f"http://{destination.host}/{namespace}",
        "--exclude-package",
        "legacy-*",
        "--report",
        str(report_path),
        env=env,
    )
    assert rerun.returncode == 0
    summary = json.loads(report_path.read_text())["summary"]
    assert summary["images_skipped"] == 11 and summary["bytes_copied"] == 0
    # The GitHub version name is the digest: an unchanged tag costs nothing at the source.
    source_requests = summary["requests"].get(env["SOURCE_REGISTRY"], 0)
    assert source_requests == 0


def test_dry_run_prints_the_plan_and_writes_nothing(
    cli: CliRunner,
    org: Org,
    github: GitHubStandIn,
    destination: LiveRegistry,
    env: dict[str, str],
    namespace: str,
) -> None:
    """--dry-run lists kept tags with digests and dropped tags with reasons; no registry traffic."""
    mark = destination.process.mark()
    github.rate_limited = 1  # a 429 with Retry-After on the first call is waited out
    result = cli(
        "registry",
        "--org",
        org.name,
        "--dest",
        f"http://{destination.host}/{namespace}",
        "--include-package",
        "app",
        "--dry-run",
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert destination.process.requests_since(mark) == []
    out = result.stdout
    assert "app: keep 3, drop 7" in out
    assert f"drop  {org.signature('app', '1.0.0')} belongs to an image not kept" in out
    digest = org.packages["app"]["1.1.2"].digest
    target = f"http://{destination.host}/{namespace}/{org.name}/app:1.1.2"
    assert f"keep  1.1.2{' ' * 20}{digest} -> {target}  (" in out
    assert "drop  1.0.0                    superseded by 1.0.1" in out
    assert "drop  sha-1a2b3c4              per-commit build" in out
    assert "drop  1.1.1-rc.1               prerelease" in out


def test_emit_specs_and_shards(
    cli: CliRunner,
    org: Org,
    destination: LiveRegistry,
    env: dict[str, str],
) -> None:
    """--emit-specs prints JSON specs; shards split packages disjointly and completely."""
    dest = "registry.example.com/backup"
    base = [
        "registry",
        "--org",
        org.name,
        "--dest",
        dest,
        "--exclude-package",
        "legacy-*",
        "--emit-specs",
        "--platform",
        "linux/arm64",
    ]
    everything = cli(*base, env=env)
    assert everything.returncode == 0, everything.stderr[-2000:]
    specs = [json.loads(line) for line in everything.stdout.splitlines()]
    assert len(specs) == 11
    assert specs[0]["dst"].startswith(f"{dest}/{org.name}/")
    assert specs[0]["transform"] == {"limitPlatforms": ["linux/arm64"]}
    assert "@sha256:" in specs[0]["src"]
    halves = []
    for index in range(2):
        shard = cli(*base, "--shard", f"{index}/2", env=env)
        halves.append({json.loads(line)["dst"] for line in shard.stdout.splitlines()})
    via_job_index = cli(*base, "--shard-count", "2", env=env | {"JOB_COMPLETION_INDEX": "1"})
    assert {json.loads(x)["dst"] for x in via_job_index.stdout.splitlines()} == halves[1]
    assert halves[0].isdisjoint(halves[1])
    assert halves[0] | halves[1] == {s["dst"] for s in specs}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"GITHUB_TOKEN": "ghp_wrong"}, "check that GITHUB_TOKEN"),
        ({"GITHUB_TOKEN": "ghp_norepo"}, "read:packages"),
        ({"GITHUB_ORG": "no-such-org"}, "not found"),
        ({"GITHUB_TOKEN": ""}, "no GitHub token"),
    ],
)
def test_setup_errors_exit_2_with_what_to_fix(
    cli: CliRunner,
    org: Org,
    destination: LiveRegistry,
    env: dict[str, str],
    change: dict[str, str],
    message: str,
) -> None:
    """A bad token, a token without read:packages and an unknown org are exit 2, explained."""
    environment = env | {"GITHUB_ORG": org.name} | change
    result = cli("registry", "--dest", f"http://{destination.host}/x", env=environment)
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr
    assert "ghp_wrong" not in result.stderr


def test_token_file_instead_of_env(
    cli: CliRunner,
    org: Org,
    env: dict[str, str],
    pat: str,
    tmp_path: Path,
) -> None:
    """--github-token-file reads the token from a file (e.g. a mounted Secret)."""
    token_file = tmp_path / "token"
    token_file.write_text(pat + "\n")
    environment = env | {"GITHUB_TOKEN": ""}
    result = cli(
        "registry",
        "--org",
        org.name,
        "--dest",
        "r.example.com/b",
        "--include-package",
        "worker",
        "--emit-specs",
        "--github-token-file",
        str(token_file),
        env=environment,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(result.stdout.splitlines()) == 2  # worker:3.4.5 and its signature


def test_the_10000_package_cap_is_reported(
    cli: CliRunner,
    github: GitHubStandIn,
    env: dict[str, str],
) -> None:
    """GitHub stops listing an org's packages at 10,000: the run says so and exits 1."""
    from tests.harness.github_api import StandInPackage

    github.owners["huge-org"] = [StandInPackage(f"p{n}", []) for n in range(10_050)]
    result = cli(
        "registry",
        "--org",
        "huge-org",
        "--dest",
        "r.example.com/b",
        "--dry-run",
        "--include-package",
        "none",
        env=env,
        timeout=600,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert '"event": "package_list_truncated"' in result.stderr
    assert '"listed": 10000' in result.stderr
