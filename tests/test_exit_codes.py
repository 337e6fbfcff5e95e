"""One exit-status table for every command, and a selection of nothing is not success.

End to end on the real registry with the GitHub stand-in: 0 done; 1 some items failed or verify
found problems; 2 usage, configuration or access (a refused login included, so that it cannot
pass for "verify found problems"); 3 nothing matched, with a warning naming what exists, and 0
with --allow-empty. The dry runs of registry and restore end with a summary line on stdout
even when there is nothing to do, and restore --dry-run writes nothing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from github_org_backup.settings.commands import COMMANDS, EXIT_CODES
from tests.conftest import LiveRegistry, docker_config_for
from tests.harness.clirun import run_cli, run_in_process
from tests.harness.github_api import GitHubStandIn
from tests.test_history import SmallOrg, _env, empty, small_org  # noqa: F401 (fixtures)
from tests.test_registry_network_errors import no_backoff, one_image_layout, refused_port  # noqa: F401

pytestmark = pytest.mark.integration


def _run(env: dict[str, str], config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = run_cli(list(args), config, env=env, timeout=300)
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return result


def _events(stderr: str, name: str) -> list[dict[str, object]]:
    found = []
    for line in stderr.splitlines():
        if line.startswith("{") and (event := json.loads(line)).get("event") == name:
            found.append(event)
    return found


def _catalog(registry: LiveRegistry) -> list[str]:
    with urllib.request.urlopen(f"{registry.url}/v2/_catalog", timeout=10) as answer:
        return list(json.load(answer)["repositories"])


def _snapshot_count(env: dict[str, str], config: Path, layout: str) -> int:
    listed = _run(env, config, "snapshots", "--dest", layout, "--json", "--allow-empty")
    assert listed.returncode == 0, listed.stderr[-2000:]
    return len(json.loads(listed.stdout))


def test_the_table_is_the_documented_one() -> None:
    """The codes a script may meet, in order; each command shares them."""
    assert [code for code, _ in EXIT_CODES] == [0, 1, 2, 3, 70, 130, 141, 143]
    assert {c.name for c in COMMANDS} == {
        "copy",
        "registry",
        "verify",
        "restore",
        "snapshots",
        "repos",
        "restore-metadata",
    }


@pytest.mark.parametrize(
    "args",
    [
        ["copy", "only-one-reference"],
        ["registry", "--org", "acme", "--max-blob-size", "nonsense"],
        ["verify", "--dest", "oci:/nonexistent/layout"],
        ["restore", "--from", "oci:/nonexistent/layout", "--to", "127.0.0.1:1/x"],
        ["snapshots", "--dest", "oci:/nonexistent/layout"],
        ["repos", "--org", "acme", "--dest", "oci:x"],
    ],
    ids=lambda args: args[0],
)
def test_every_command_ends_a_usage_error_with_2(args: list[str], tmp_path: Path) -> None:
    result = _run({}, docker_config_for(tmp_path / "docker"), *args)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "error:" in result.stderr


def test_a_selection_of_nothing_is_3_names_what_exists_and_records_no_snapshot(
    small_org: tuple[SmallOrg, GitHubStandIn],  # noqa: F811
    source: LiveRegistry,
    pat: str,
    tmp_path: Path,
) -> None:
    org, stand_in = small_org
    config = docker_config_for(tmp_path / "docker")
    env = _env(pat, stand_in, source)
    layout = f"oci:{tmp_path / 'layout'}"
    base = ["registry", "--org", org.name, "--dest", layout]

    # A first run that selects nothing records one empty snapshot: it shadows nothing.
    first = _run(env, config, *base, "--include-package", "nothing")
    assert first.returncode == 3, first.stderr[-3000:]
    assert _snapshot_count(env, config, layout) == 1

    backed = _run(env, config, *base)
    assert backed.returncode == 0, backed.stderr[-3000:]
    assert _snapshot_count(env, config, layout) == 2

    # The form verify and restore take, with the owner: nothing, so no snapshot shadows the
    # real one, with or without --allow-empty.
    nothing = _run(env, config, *base, "--include-package", f"{org.name}/team/*")
    assert nothing.returncode == 3, nothing.stderr[-3000:]
    (warning,) = _events(nothing.stderr, "nothing_selected")
    assert "none of the 2 package(s)" in str(warning["reason"])
    assert "app, web" in str(warning["reason"])
    assert _events(nothing.stderr, "snapshot_skipped")
    allowed = _run(env, config, *base, "--include-package", "team/*", "--allow-empty")
    assert allowed.returncode == 0, allowed.stderr[-3000:]
    assert _events(allowed.stderr, "nothing_selected")  # still said
    assert _snapshot_count(env, config, layout) == 2
    latest = json.loads(_run(env, config, "snapshots", "--dest", layout, "--json").stdout)[-1]
    assert latest["tags"] > 0  # the latest is still the real backup

    # A shard that holds no package: app is shard 3 of 4 and web shard 1; 0 and 2 are empty.
    dry = _run(env, config, *base, "--shard", "0/4", "--dry-run")
    assert dry.returncode == 3, dry.stderr[-3000:]
    assert dry.stdout.splitlines()[-1] == (
        "dry run: 0 package(s) selected, 2 passed over, 0 failed; 0 tag(s) to copy, "
        "0 dropped; nothing was written"
    )
    full = _run(env, config, *base, "--shard", "3/4", "--dry-run")
    assert full.returncode == 0, full.stderr[-3000:]
    assert full.stdout.splitlines()[-1].startswith("dry run: 1 package(s) selected, 1 passed")


def test_an_owner_without_packages_is_3(
    source: LiveRegistry, pat: str, tmp_path: Path, namespace: str
) -> None:
    stand_in = GitHubStandIn(
        owners={f"bare{namespace}": []}, tokens={pat: {"read:packages"}}
    ).start()
    try:
        env = _env(pat, stand_in, source)
        args = ["registry", "--org", f"bare{namespace}", "--dest", f"oci:{tmp_path / 'l'}"]
        result = _run(env, docker_config_for(tmp_path / "docker"), *args)
    finally:
        stand_in.stop()
    assert result.returncode == 3, result.stderr[-3000:]
    (warning,) = _events(result.stderr, "nothing_selected")
    assert "has no container package this token can see" in str(warning["reason"])


def test_verify_problems_are_1_a_refused_login_2_and_nothing_3(
    small_org: tuple[SmallOrg, GitHubStandIn],  # noqa: F811
    source: LiveRegistry,
    destination: LiveRegistry,
    namespace: str,
    pat: str,
    tmp_path: Path,
) -> None:
    org, stand_in = small_org
    config = docker_config_for(tmp_path / "docker")
    env = _env(pat, stand_in, source, destination)
    prefix = f"http://{destination.host}/{namespace}"
    backed = _run(env, config, "registry", "--org", org.name, "--dest", prefix)
    assert backed.returncode == 0, backed.stderr[-3000:]
    assert _run(env, config, "verify", "--dest", prefix).returncode == 0

    wrong = env | {"DEST_PASSWORD": destination.password + "x"}
    refused = _run(wrong, config, "verify", "--dest", prefix)
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert refused.stdout == ""  # not a "problem found"

    nothing = _run(env, config, "verify", "--dest", prefix, "--include-package", "nothing")
    assert nothing.returncode == 3, nothing.stderr[-3000:]
    (warning,) = _events(nothing.stderr, "nothing_selected")
    assert f"{org.name}/app" in str(warning["reason"])

    # A layout missing a blob: a problem found, one line on stdout, exit 1.
    layout = tmp_path / "layout"
    copied = _run(env, config, "registry", "--org", org.name, "--dest", f"oci:{layout}")
    assert copied.returncode == 0, copied.stderr[-3000:]
    blobs = sorted((layout / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
    blobs[-1].unlink()  # the largest: a layer
    damaged = _run(env, config, "verify", "--dest", f"oci:{layout}")
    assert damaged.returncode == 1, damaged.stderr[-3000:]
    assert damaged.stdout.strip()


def test_restore_dry_run_prints_each_tag_and_writes_nothing(
    small_org: tuple[SmallOrg, GitHubStandIn],  # noqa: F811
    empty: LiveRegistry,  # noqa: F811
    source: LiveRegistry,
    pat: str,
    tmp_path: Path,
) -> None:
    org, stand_in = small_org
    config = docker_config_for(tmp_path / "docker")
    env = _env(pat, stand_in, source)
    layout = tmp_path / "layout"
    backed = _run(
        env, config, "registry", "--org", org.name, "--dest", f"oci:{layout}", "--all-patches"
    )
    assert backed.returncode == 0, backed.stderr[-3000:]
    before = sorted(p.name for p in (layout / "blobs" / "sha256").iterdir())
    target = f"http://{empty.host}/restored"

    dry = _run(env, config, "restore", "--from", f"oci:{layout}", "--to", target, "--dry-run")
    assert dry.returncode == 0, dry.stderr[-3000:]
    lines = dry.stdout.splitlines()
    restores = sorted(line.split()[1] for line in lines if line.startswith("restore  "))
    expected = sorted(
        f"http://{empty.host}/restored/{org.name}/{package}:{tag}"
        for package, tags in org.tags.items()
        for tag in tags
    )
    assert restores == expected
    assert lines[-1].startswith(f"dry run: {len(expected)} tag(s) to restore from snapshot ")
    assert _catalog(empty) == []  # nothing written to the target
    assert sorted(p.name for p in (layout / "blobs" / "sha256").iterdir()) == before

    args = ["restore", "--from", f"oci:{layout}", "--to", target, "--include-package", "nope"]
    nothing = _run(env, config, *args, "--dry-run")
    assert nothing.returncode == 3, nothing.stderr[-3000:]
    assert nothing.stdout.splitlines()[-1].startswith("dry run: nothing to restore")
    (warning,) = _events(nothing.stderr, "nothing_selected")
    assert "app" in str(warning["reason"]) and "web" in str(warning["reason"])
    assert _run(env, config, *args, "--allow-empty").returncode == 0
    assert _catalog(empty) == []
    shutil.rmtree(layout)


def test_verify_of_a_layout_whose_index_is_corrupt_is_a_problem_found(tmp_path: Path) -> None:
    """The backup's own index damaged is what verify exists to find: 1, one line on stdout;
    snapshots and restore cannot read it at all: 2."""
    layout = tmp_path / "layout"
    layout.mkdir()
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text('{"schemaVersion": 2, "manifests": [')
    config = docker_config_for(tmp_path / "docker")
    verify = _run({}, config, "verify", "--dest", f"oci:{layout}")
    assert verify.returncode == 1, verify.stderr[-2000:]
    assert verify.stdout.startswith(f"oci:{layout}: ") and "index.json" in verify.stdout
    assert _run({}, config, "snapshots", "--dest", f"oci:{layout}").returncode == 2


def test_a_copy_that_cannot_reach_or_log_in_anywhere_is_2_and_one_bad_input_is_1(
    no_backoff: None,  # noqa: F811
    tmp_path: Path,
    destination: LiveRegistry,
    namespace: str,
) -> None:
    """Every image failing for want of access dooms the run (2); one destination refused
    beside one that works is that image's failure alone (1)."""
    layout = one_image_layout(tmp_path)
    (tmp_path / "docker").mkdir()
    env = {
        "DOCKER_CONFIG": str(tmp_path / "docker"),
        "DEST_USERNAME": destination.username,
        "DEST_PASSWORD": destination.password,
    }
    gone = f"http://127.0.0.1:{refused_port()}/{namespace}/app:1"
    good = f"http://{destination.host}/{namespace}/app:1"

    alone = run_in_process(["copy", layout, gone], env)
    assert alone.returncode == 2, alone.stderr[-2000:]
    refused = run_in_process(["copy", layout, good], env | {"DEST_PASSWORD": "wrong"})
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "DEST_USERNAME/DEST_PASSWORD" in refused.stderr

    specs = tmp_path / "specs.json"
    specs.write_text(json.dumps([{"src": layout, "dst": gone}, {"src": layout, "dst": good}]))
    mixed = run_in_process(["copy", "--specs", str(specs)], env)
    assert mixed.returncode == 1, mixed.stderr[-2000:]
