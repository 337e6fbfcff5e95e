"""The README's quick start, run as it stands.

The commands are taken from the ```sh block under "## Quick start" in README.md and run with
bash, each as written, in a fresh working directory whose HOME holds the token file the block
reads (a token generated here). The install line is left out: CI installs the package the same
way before the suite runs (a venv and pip install of this checkout, in .ci/run), so
``github-org-backup`` is on PATH from that venv.

Stand-ins take the place of GitHub and ghcr.io through the variables a user could set too:
GITHUB_API_URL points at the GitHub API stand-in (tests/harness/github_api.py), and
SOURCE_REGISTRY at the real distribution registry serving the organisation's images with
token auth, as ghcr.io does. The restore target is another real distribution registry, with no
auth, as ``docker run -p 5000:5000 registry:2`` is on a laptop. Only two things in the
commands are substituted: the organisation's name (``acme``, for the one generated here) and
the restore target's host:port (``localhost:5000``, for the free loopback port it listens
on). skopeo, an independent client, then reads what was restored.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import LiveRegistry
from tests.harness.github_api import GitHubStandIn
from tests.harness.org import Org, build_org
from tests.harness.registry import RegistryProcess
from tests.test_registry_command import expected_tags

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
ORG_IN_README = "acme"
TARGET_IN_README = "localhost:5000"


def quick_start_block() -> list[str]:
    """The lines of the first sh block under "## Quick start", line continuations joined."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("\n## Quick start\n") :]
    block = section.split("```sh\n", 1)[1].split("\n```", 1)[0]
    return [line for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def is_install(line: str) -> bool:
    return bool(re.search(r"\bpipx? install\b|\bvenv\b", line))


@dataclass(frozen=True)
class Step:
    line: str
    returncode: int
    stdout: str
    stderr: str


def test_the_quick_start_block_is_what_the_readme_promises() -> None:
    """Install, the token from a file (never a literal), then the four commands, no --dest
    for registry."""
    lines = quick_start_block()
    assert is_install(lines[0]) and "pip install ." in lines[0]
    exports = [line for line in lines if line.startswith("export ")]
    assert exports == [line for line in lines if "GITHUB_TOKEN" in line]
    assert re.fullmatch(r'export GITHUB_TOKEN="\$\(cat ~/[^)]+\)".*', exports[0])
    assert not re.search(r"gh[pousr]_[A-Za-z0-9]|github_pat_", "\n".join(lines))
    commands = [line.split("#")[0].split() for line in lines if line.startswith("github-org")]
    assert [c[1] for c in commands] == ["registry", "verify", "snapshots", "restore"]
    assert commands[0] == ["github-org-backup", "registry", "--org", ORG_IN_README]
    assert f"http://{TARGET_IN_README}/" in lines[-1]


@pytest.fixture
def laptop_registry(tmp_path: Path) -> Iterator[RegistryProcess]:
    """A registry with no auth on loopback: what ``registry:2`` is on a laptop."""
    process = RegistryProcess(tmp_path / "restored-registry").start()
    yield process
    process.stop()


@pytest.fixture
def quick_org(source: LiveRegistry, pat: str) -> Iterator[tuple[Org, GitHubStandIn]]:
    """An organisation of its own, and a GitHub stand-in that serves only it."""
    org = build_org(f"acme{secrets.token_hex(3)}", source.pusher())
    github = GitHubStandIn(owners={org.name: org.api}, tokens={pat: {"read:packages"}}).start()
    yield org, github
    github.stop()


def run_quick_start(
    tmp_path: Path, env: dict[str, str], org: str, target: str
) -> tuple[Path, list[Step]]:
    """Every non-install line of the block, each in its own bash after the exports before it,
    in one working directory; the block's own text but for the org and the target."""
    work = tmp_path / "work"
    work.mkdir()
    exports: list[str] = []
    steps: list[Step] = []
    for line in quick_start_block():
        if is_install(line):
            continue
        line = line.replace(f"--org {ORG_IN_README}", f"--org {org}")
        line = line.replace(TARGET_IN_README, target)
        if line.startswith("export "):
            exports.append(line)
            continue
        script = "\n".join(["set -euo pipefail", *exports, line])
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        steps.append(Step(line, done.returncode, done.stdout, done.stderr))
    return work, steps


def events(stderr: str) -> list[dict[str, object]]:
    """The JSON log events among the lines of stderr."""
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def skopeo(*args: str) -> str:
    done = subprocess.run(
        ["skopeo", *args, "--tls-verify=false"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def raw_digest(reference: str) -> str:
    done = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{reference}"],
        capture_output=True,
        timeout=60,
        check=True,
    )
    return "sha256:" + hashlib.sha256(done.stdout).hexdigest()


def test_the_quick_start_runs_as_written(
    tmp_path: Path,
    quick_org: tuple[Org, GitHubStandIn],
    source: LiveRegistry,
    pat: str,
    laptop_registry: RegistryProcess,
) -> None:
    """Each command exits 0; registry writes ./ghcr-backup without --dest; verify finds no
    problem; snapshots lists the one snapshot; skopeo finds every kept tag in the target
    registry with the source's digest."""
    org, github = quick_org
    home = tmp_path / "home"
    home.mkdir()
    (home / ".ghcr-token").write_text(pat + "\n")
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GITHUB_", "DEST_", "BACKUP_", "DOCKER_", "SOURCE_"))
    }
    bin_dir = str(Path(sys.executable).parent)  # the venv CI installed the package into
    env = inherited | {
        "HOME": str(home),
        "PATH": bin_dir + os.pathsep + inherited.get("PATH", ""),
        "GITHUB_API_URL": github.url,
        "SOURCE_REGISTRY": f"http://{source.host}",
    }
    work, steps = run_quick_start(tmp_path, env, org.name, laptop_registry.host)

    assert [s.line.split()[1] for s in steps] == ["registry", "verify", "snapshots", "restore"]
    for step in steps:
        assert step.returncode == 0, f"{step.line}\n{step.stdout[-2000:]}{step.stderr[-3000:]}"
    backup, verify, snapshots, restore = steps

    layout = work / "ghcr-backup"
    assert json.loads((layout / "oci-layout").read_text())["imageLayoutVersion"] == "1.0.0"
    refs = {
        m["annotations"]["org.opencontainers.image.ref.name"]
        for m in json.loads((layout / "index.json").read_text())["manifests"]
    }
    kept = expected_tags(org)
    for package, tags in kept.items():
        assert {f"{org.name}/{package}:{tag}" for tag in tags} <= refs
    # Without --dest, the run says at its start where the backup goes.
    said = backup.stdout + backup.stderr
    assert "oci:./ghcr-backup" in said, said[:2000]
    assert "image_copied" not in said[: said.index("oci:./ghcr-backup")]

    assert verify.stdout == ""  # a problem would be a line here
    (finished,) = [e for e in events(verify.stderr) if e.get("event") == "verify_finished"]
    assert finished["problems"] == 0 and finished["tags"] == sum(map(len, kept.values()))

    rows = [line for line in snapshots.stdout.splitlines() if re.match(r"\d{8}T\d{6}", line)]
    assert len(rows) == 1, snapshots.stdout
    (restored,) = [e for e in events(restore.stderr) if e.get("event") == "restore_from_snapshot"]
    assert restored["snapshot"] == rows[0].split()[0]

    target = f"{laptop_registry.host}/restored"
    for package, tags in kept.items():
        repository = f"{target}/{org.name}/{package}"
        listed = json.loads(skopeo("list-tags", f"docker://{repository}"))["Tags"]
        assert sorted(listed) == tags
        for tag in tags:
            assert raw_digest(f"{repository}:{tag}") == org.packages[package][tag].digest
