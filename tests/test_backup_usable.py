"""A backup that can be checked and restored: round trips, verify, signatures, prune."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CliRunner, LiveRegistry
from tests.harness.org import Org
from tests.harness.registry import RegistryProcess
from tests.harness.walker import Walker
from tests.test_registry_command import expected_tags

pytestmark = pytest.mark.integration


@pytest.fixture
def empty_registry(tmp_path: Path) -> Iterator[RegistryProcess]:
    """A new registry with nothing in it, as after losing everything."""
    process = RegistryProcess(tmp_path / "empty").start()
    yield process
    process.stop()


def digests_match(org: Org, walker: Walker) -> int:
    """Count tags whose digest equals the original; fail on any that differ or are incomplete."""
    equal = 0
    for package, tags in expected_tags(org).items():
        for tag in tags:
            walked = walker.walk(org.repository(package), tag)
            assert walked.problems == [], walked.problems
            assert walked.digest == org.packages[package][tag].digest
            equal += 1
    return equal


def backup(cli: CliRunner, org: Org, env: dict[str, str], dest: str, *extra: str) -> dict[str, Any]:
    """Run the registry command; its report."""
    result = cli(
        "registry",
        "--org",
        org.name,
        "--dest",
        dest,
        "--exclude-package",
        "legacy-*",
        "--report",
        "-",
        *extra,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_round_trip_through_a_backup_registry(
    cli: CliRunner,
    org: Org,
    env: dict[str, str],
    destination: LiveRegistry,
    empty_registry: RegistryProcess,
    namespace: str,
) -> None:
    """GHCR stand-in -> backup registry -> empty registry: every tag's digest is the original."""
    prefix = f"http://{destination.host}/{namespace}"
    backup(cli, org, env, prefix)
    restored = cli("restore", "--from", prefix, "--to", f"http://{empty_registry.host}")
    assert restored.returncode == 0, restored.stderr[-3000:]
    equal = digests_match(org, Walker(empty_registry.url, lambda _: None))
    assert equal == 11
    print(f"\nregistry round trip: {equal} of 11 tags restored with the original digest")
    walker = Walker(empty_registry.url, lambda _: None)
    assert org.signature("app", "1.0.0") not in walker.tags(org.repository("app"))
    assert org.signature("worker", "3.4.5") in walker.tags(org.repository("worker"))


def test_round_trip_through_an_oci_layout(
    cli: CliRunner,
    org: Org,
    env: dict[str, str],
    empty_registry: RegistryProcess,
    tmp_path: Path,
) -> None:
    """GHCR stand-in -> OCI layout (read by skopeo and umoci) -> empty registry, digests equal."""
    layout = tmp_path / "ghcr-backup"
    backup(cli, org, env, f"oci:{layout}")
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    read_by_skopeo = 0
    for package, tags in expected_tags(org).items():
        for tag in tags:
            if "oci" not in org.packages[package][tag].media_type:
                continue  # skopeo's oci: transport skips index.json entries of Docker types
            raw = subprocess.run(
                ["skopeo", "inspect", "--raw", f"oci:{layout}:{org.repository(package)}:{tag}"],
                capture_output=True,
                check=True,
            ).stdout
            assert "sha256:" + hashlib.sha256(raw).hexdigest() == org.packages[package][tag].digest
            read_by_skopeo += 1
    oci_typed = sum(
        "oci" in org.packages[p][t].media_type
        for p, tags in expected_tags(org).items()
        for t in tags
    )
    assert read_by_skopeo == oci_typed >= 6
    refs = subprocess.run(
        ["umoci", "ls", "--layout", str(layout)], capture_output=True, text=True, check=True
    ).stdout.split()
    # Besides the tags: the snapshots repository (one snapshot, the discovery cache) and one
    # history tag per repository (test_history.py).
    internal = [r for r in refs if "snapshots.github-org-backup" in r or r.endswith(".history")]
    assert len([r for r in internal if r.endswith(".history")]) == len(expected_tags(org))
    assert len([r for r in internal if re.search(r":[0-9]{8}T[0-9]{6}\.[0-9]{3}Z$", r)]) == 1
    refs = [r for r in refs if r not in internal]
    assert f"{org.repository('app')}:latest" in refs and len(refs) == 11

    verify = cli("verify", "--dest", f"oci:{layout}", "--deep")
    assert verify.returncode == 0, verify.stdout + verify.stderr[-2000:]
    restored = cli("restore", "--from", f"oci:{layout}", "--to", f"http://{empty_registry.host}")
    assert restored.returncode == 0, restored.stderr[-3000:]
    assert digests_match(org, Walker(empty_registry.url, lambda _: None)) == 11
    print(
        f"\nOCI layout round trip: {read_by_skopeo} OCI-typed tags read by skopeo, "
        "11 of 11 restored with the original digest"
    )


def test_verify_names_a_deleted_blob_and_a_deleted_child_manifest(
    cli: CliRunner,
    org: Org,
    env: dict[str, str],
    destination: LiveRegistry,
    namespace: str,
    tmp_path: Path,
) -> None:
    """Damage two backups; verify exits 1 and names exactly what is missing."""
    layout = tmp_path / "layout"
    backup(cli, org, env, f"oci:{layout}", "--include-package", "team/*")
    index = json.loads(org.packages["team/api"]["main"].raw)
    child = index["manifests"][0]["digest"]
    child_manifest = json.loads((layout / "blobs" / "sha256" / child[7:]).read_bytes())
    layer = child_manifest["layers"][-1]["digest"]
    other = json.loads(org.packages["team/tools/cli"]["edge"].raw)["manifests"][1]["digest"]
    (layout / "blobs" / "sha256" / layer[7:]).unlink()
    (layout / "blobs" / "sha256" / other[7:]).unlink()
    result = cli("verify", "--dest", f"oci:{layout}")
    assert result.returncode == 1
    assert f"blob {layer} missing" in result.stdout
    assert f"manifest {other} missing" in result.stdout
    assert "team/tools/cli:edge" in result.stdout

    prefix = f"http://{destination.host}/{namespace}"
    backup(cli, org, env, prefix, "--include-package", "worker")
    assert cli("verify", "--dest", prefix).returncode == 0
    worker_child = json.loads(org.packages["worker"]["3.4.5"].raw)["manifests"][0]["digest"]
    walker = destination.walker()
    child_doc = json.loads(
        walker.manifest(f"{namespace}/{org.repository('worker')}", worker_child) or b"{}"
    )
    blob = child_doc["layers"][-1]["digest"]
    storage = destination.process.directory / "data/docker/registry/v2/blobs/sha256"
    (storage / blob[7:9] / blob[7:] / "data").unlink()
    broken = cli("verify", "--dest", prefix)
    assert broken.returncode == 1
    assert f"blob {blob} missing" in broken.stdout


def test_prune_deletes_only_what_the_policy_no_longer_keeps(
    cli: CliRunner,
    org: Org,
    env: dict[str, str],
    destination: LiveRegistry,
    namespace: str,
) -> None:
    """--all-patches backup, then the default policy with --keep-last 1 --prune: once the
    snapshot that named them is forgotten, only the tags the policy dropped go."""
    prefix = f"http://{destination.host}/{namespace}"
    backup(cli, org, env, prefix, "--all-patches")
    walker = destination.walker()
    app = f"{namespace}/{org.repository('app')}"
    assert "1.0.0" in walker.tags(app)

    dry = cli(
        "registry",
        "--org",
        org.name,
        "--dest",
        prefix,
        "--exclude-package",
        "legacy-*",
        "--keep-last",
        "1",
        "--prune",
        "--dry-run",
        env=env,
    )
    assert dry.returncode == 0, dry.stderr[-2000:]
    would = sorted(line.split()[1] for line in dry.stdout.splitlines() if line.startswith("prune"))
    assert f"{prefix}/{org.repository('app')}:1.0.0" in would
    assert "1.0.0" in walker.tags(app)  # the dry run deleted nothing

    refused = cli(
        "registry",
        "--org",
        org.name,
        "--dest",
        prefix,
        "--include-package",
        "nothing",
        "--prune",
        env=env,
    )
    # A selection of nothing records no snapshot and prunes nothing: exit 3, not success.
    assert refused.returncode == 3
    assert "nothing_selected" in refused.stderr and "snapshot_skipped" in refused.stderr
    assert "1.0.0" in walker.tags(app)

    kept_all = backup(cli, org, env, prefix, "--prune")
    assert kept_all["summary"]["tags_pruned"] == 0  # the first snapshot still names them all
    backup(cli, org, env, prefix, "--keep-last", "1", "--prune")
    for package, tags in expected_tags(org).items():
        assert walker.image_tags(f"{namespace}/{org.repository(package)}") == tags
        for tag in tags:
            walked = walker.walk(f"{namespace}/{org.repository(package)}", tag)
            assert walked.problems == [] and walked.digest == org.packages[package][tag].digest
    pruned = {
        line.split()[1].rsplit(":", 1)[1]
        for line in dry.stdout.splitlines()
        if line.startswith("prune")
    }
    assert {
        "1.0.0",
        "1.1.0",
        "v1.1.0",
        "2.0.9",
        "2.0.8-alpine",
        "0.2.0",
        org.signature("app", "1.0.0"),
    } == pruned
