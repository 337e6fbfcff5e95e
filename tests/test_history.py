"""History the source cannot erase: snapshots, overwritten images kept, restore as of a date.

End to end on real registries: back up, overwrite one tag and delete another at the source,
back up again, collect the backup registry's garbage, then restore the first snapshot.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import LiveRegistry, docker_config_for
from tests.harness.clirun import run_cli
from tests.harness.github_api import GitHubStandIn, StandInPackage
from tests.harness.images import OCI_LAYER, Blob, Manifest, build_image, build_index
from tests.harness.registry import BINARY, RegistryProcess, htpasswd_auth
from tests.harness.walker import Walker

pytestmark = pytest.mark.integration

HISTORY_TAG = "github-org-backup.history"


@dataclass
class Backup:
    """A fresh htpasswd registry for one test, which the test may stop, collect and restart."""

    live: LiveRegistry
    directory: Path

    def collect_garbage(self) -> str:
        """Stop the registry, run distribution's collector (never --delete-untagged on 2.8)."""
        self.live.process.stop()
        result = subprocess.run(
            [BINARY, "garbage-collect", str(self.directory / "config.yml")],
            capture_output=True,
            text=True,
            check=True,
        )
        self.live.process.start()
        return result.stdout


@pytest.fixture
def backup(tmp_path: Path) -> Iterator[Backup]:
    directory = tmp_path / "backup-registry"
    password = uuid.uuid4().hex
    process = RegistryProcess(directory, htpasswd_auth(directory, {"backup": password})).start()
    basic = "Basic " + base64.b64encode(f"backup:{password}".encode()).decode()
    yield Backup(LiveRegistry(process, "backup", password, lambda _repo: basic), directory)
    process.stop()


@pytest.fixture
def empty(tmp_path: Path) -> Iterator[LiveRegistry]:
    process = RegistryProcess(tmp_path / "empty-registry").start()
    yield LiveRegistry(process, "", "", lambda _repo: None)
    process.stop()


class SmallOrg:
    """Two packages in the GHCR-like source, listed by a GitHub stand-in of their own."""

    def __init__(self, source: LiveRegistry, name: str) -> None:
        self.source = source
        self.name = name
        self.rng = random.Random(name)
        self.pusher = source.pusher()
        self.tags: dict[str, dict[str, Manifest]] = {"app": {}, "web": {}}
        for package, tags in (("app", ["1.0.0", "1.1.0", "latest"]), ("web", ["2.0.0", "2.1.0"])):
            for tag in tags:
                self.push(package, tag)

    def push(self, package: str, tag: str) -> Manifest:
        children = [
            (p, build_image(self.rng, p, [Blob(self.rng.randbytes(900), OCI_LAYER)], False, 0, tag))
            for p in ("linux/amd64", "linux/arm64")
        ]
        index = build_index(children, [], False, 0)
        self.pusher.push_manifest(f"{self.name}/{package}", tag, index)
        self.tags[package][tag] = index
        return index

    def api(self) -> list[StandInPackage]:
        packages = []
        for package, tags in self.tags.items():
            versions: dict[str, list[str]] = {}
            for tag, manifest in tags.items():
                versions.setdefault(manifest.digest, []).append(tag)
            packages.append(StandInPackage(package, list(versions.items())))
        return packages


@pytest.fixture
def small_org(
    source: LiveRegistry, namespace: str, pat: str
) -> Iterator[tuple[SmallOrg, GitHubStandIn]]:
    org = SmallOrg(source, f"org{namespace}")
    stand_in = GitHubStandIn(owners={org.name: org.api()}, tokens={pat: {"read:packages"}}).start()
    yield org, stand_in
    stand_in.stop()


def _reachable(walker: Walker, repository: str) -> set[str]:
    """Every manifest digest reachable from a tag of ``repository``, through indexes."""
    found: set[str] = set()
    pending = list(walker.tags(repository))
    while pending:
        reference = pending.pop()
        raw = walker.manifest(repository, reference)
        if raw is None:
            continue
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        if digest in found:
            continue
        found.add(digest)
        pending += [child["digest"] for child in json.loads(raw).get("manifests", [])]
    return found


def _env(
    pat: str, stand_in: GitHubStandIn, source: LiveRegistry, dest: LiveRegistry | None = None
) -> dict[str, str]:
    """The registry command's environment: the token, the stand-ins, the backup's password."""
    env = {
        "GITHUB_TOKEN": pat,
        "GITHUB_API_URL": stand_in.url,
        "SOURCE_REGISTRY": f"http://{source.host}",
    }
    if dest is not None:
        env |= {"DEST_USERNAME": dest.username, "DEST_PASSWORD": dest.password}
    return env


def _run(env: dict[str, str], config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = run_cli(list(args), config, env=env, timeout=300)
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return result


def test_overwritten_and_deleted_tags_survive_gc_and_restore_as_of_the_first_snapshot(
    small_org: tuple[SmallOrg, GitHubStandIn],
    backup: Backup,
    empty: LiveRegistry,
    source: LiveRegistry,
    pat: str,
    tmp_path: Path,
) -> None:
    """A bad release over 1.1.0 and a deleted 2.0.0 cannot erase the first night's backup."""
    org, stand_in = small_org
    config = docker_config_for(tmp_path / "docker", backup.live)
    env = _env(pat, stand_in, source, backup.live)
    prefix = f"http://{backup.live.host}/ghcr"
    first = _run(env, config, "registry", "--org", org.name, "--dest", prefix, "--all-patches")
    assert first.returncode == 0, first.stderr[-3000:]
    listed = _run(env, config, "snapshots", "--dest", prefix, "--json")
    assert listed.returncode == 0, listed.stderr
    (first_snapshot,) = json.loads(listed.stdout)
    assert (first_snapshot["tags"], first_snapshot["digests"]) == (5, 5)
    first_digests = {
        (package, tag): manifest.digest
        for package, tags in org.tags.items()
        for tag, manifest in tags.items()
    }

    # The source overwrites app:1.1.0 with a bad release and deletes web:2.0.0.
    bad = org.push("app", "1.1.0")
    del org.tags["web"]["2.0.0"]
    stand_in.owners[org.name] = org.api()
    report_path = tmp_path / "second.json"
    second = _run(
        env,
        config,
        "registry",
        "--org",
        org.name,
        "--dest",
        prefix,
        "--all-patches",
        "--report",
        str(report_path),
    )
    assert second.returncode == 0, second.stderr[-3000:]
    report = json.loads(report_path.read_text())
    moved = report["moved_tags"]
    assert moved == [
        {"tag": f"{org.name}/app:1.1.0", "was": first_digests[("app", "1.1.0")], "now": bad.digest}
    ]
    assert report["summary"]["tags_moved"] == 1
    assert "tag_moved" in second.stderr

    # Every digest of the first snapshot is reachable from a tag of its own repository, and
    # the deleted tag is still in the backup: deletions at the source do not propagate.
    walker = backup.live.walker()
    for repository in ("app", "web"):
        name = f"ghcr/{org.name}/{repository}"
        assert HISTORY_TAG in walker.tags(name)
        reachable = _reachable(walker, name)
        for (package, _tag), digest in first_digests.items():
            if package == repository:
                assert digest in reachable, (package, _tag)
    assert "2.0.0" in walker.tags(f"ghcr/{org.name}/web")

    # The registry's garbage collector keeps all of it.
    backup.collect_garbage()
    walker = backup.live.walker()
    for (package, tag), digest in first_digests.items():
        walked = walker.walk(f"ghcr/{org.name}/{package}", digest)
        assert (walked.digest, walked.problems) == (digest, []), (package, tag)

    # Restore exactly the first snapshot into an empty registry.
    restore_report = tmp_path / "restore.json"
    restored = _run(
        env | {"DEST_USERNAME": "", "DEST_PASSWORD": ""},
        config,
        "restore",
        "--from",
        prefix,
        "--to",
        f"http://{empty.host}/restored",
        "--snapshot",
        first_snapshot["id"],
        "--report",
        str(restore_report),
    )
    assert restored.returncode == 0, restored.stderr[-3000:]
    assert json.loads(restore_report.read_text())["summary"]["snapshot"] == first_snapshot["id"]
    target = empty.walker()
    for (package, tag), digest in first_digests.items():
        walked = target.walk(f"restored/{org.name}/{package}", tag)
        assert (walked.digest, walked.problems) == (digest, []), (package, tag)
    assert HISTORY_TAG not in target.tags(f"restored/{org.name}/app")

    # Without --snapshot, restore takes the latest: the bad release, and no deleted tag.
    latest = _run(
        env | {"DEST_USERNAME": "", "DEST_PASSWORD": ""},
        config,
        "restore",
        "--from",
        prefix,
        "--to",
        f"http://{empty.host}/latest",
    )
    assert latest.returncode == 0, latest.stderr[-3000:]
    assert target.walk(f"latest/{org.name}/app", "1.1.0").digest == bad.digest
    assert target.tags(f"latest/{org.name}/web") == ["2.1.0"]


def _layout_reachable(root: Path) -> set[str]:
    """Every manifest digest reachable from a ref of an OCI layout's index.json."""
    index = json.loads((root / "index.json").read_text())
    pending = [entry["digest"] for entry in index["manifests"]]
    found: set[str] = set()
    while pending:
        digest = pending.pop()
        if digest in found:
            continue
        found.add(digest)
        raw = (root / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()
        pending += [child["digest"] for child in json.loads(raw).get("manifests", [])]
    return found


def test_history_in_an_oci_layout(
    small_org: tuple[SmallOrg, GitHubStandIn],
    empty: LiveRegistry,
    source: LiveRegistry,
    pat: str,
    tmp_path: Path,
) -> None:
    """The same through a layout: snapshots live inside it, old digests stay referenced."""
    org, stand_in = small_org
    config = docker_config_for(tmp_path / "docker")
    env = _env(pat, stand_in, source)
    layout = tmp_path / "layout"
    args = ["registry", "--org", org.name, "--dest", f"oci:{layout}", "--all-patches"]
    assert _run(env, config, *args).returncode == 0
    first_digests = {(p, t): m.digest for p, tags in org.tags.items() for t, m in tags.items()}
    bad = org.push("app", "1.1.0")
    del org.tags["web"]["2.0.0"]
    stand_in.owners[org.name] = org.api()
    second = _run(env, config, *args, "--report", str(tmp_path / "r.json"))
    assert second.returncode == 0, second.stderr[-3000:]
    assert json.loads((tmp_path / "r.json").read_text())["summary"]["tags_moved"] == 1
    assert set(first_digests.values()) <= _layout_reachable(layout)

    listed = json.loads(_run(env, config, "snapshots", "--dest", f"oci:{layout}", "--json").stdout)
    assert len(listed) == 2 and listed[0]["id"] < listed[1]["id"]
    # --as-of the first snapshot's time restores it, exactly.
    restored = _run(
        env,
        config,
        "restore",
        "--from",
        f"oci:{layout}",
        "--to",
        f"http://{empty.host}/r",
        "--as-of",
        listed[0]["time"],
    )
    assert restored.returncode == 0, restored.stderr[-3000:]
    walker = empty.walker()
    for (package, tag), digest in first_digests.items():
        walked = walker.walk(f"r/{org.name}/{package}", tag)
        assert (walked.digest, walked.problems) == (digest, []), (package, tag)
    assert walker.walk(f"r/{org.name}/app", "1.1.0").digest != bad.digest
    # verify checks the layout, snapshots and histories included.
    checked = _run(env, config, "verify", "--dest", f"oci:{layout}", "--deep")
    assert checked.returncode == 0, checked.stdout + checked.stderr[-2000:]


def test_retention_forgets_old_snapshots_and_prune_deletes_only_what_none_names(
    small_org: tuple[SmallOrg, GitHubStandIn],
    backup: Backup,
    source: LiveRegistry,
    pat: str,
    tmp_path: Path,
) -> None:
    """Deletions stay by default; --keep-last 1 --prune then removes what no kept snapshot names."""
    org, stand_in = small_org
    config = docker_config_for(tmp_path / "docker", backup.live)
    env = _env(pat, stand_in, source, backup.live)
    prefix = f"http://{backup.live.host}/ghcr"
    args = ["registry", "--org", org.name, "--dest", prefix, "--all-patches"]
    assert _run(env, config, *args).returncode == 0
    old = org.tags["app"]["1.1.0"].digest
    org.push("app", "1.1.0")
    del org.tags["web"]["2.0.0"]
    stand_in.owners[org.name] = org.api()
    # Plain --prune keeps everything the first snapshot names: nothing goes.
    pruned = _run(env, config, *args, "--prune", "--report", str(tmp_path / "a.json"))
    assert pruned.returncode == 0, pruned.stderr[-3000:]
    assert json.loads((tmp_path / "a.json").read_text())["summary"]["tags_pruned"] == 0
    walker = backup.live.walker()
    assert "2.0.0" in walker.tags(f"ghcr/{org.name}/web")

    dry = _run(env, config, *args, "--keep-last", "1", "--prune", "--dry-run")
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert f"prune  {prefix}/{org.name}/web:2.0.0" in dry.stdout
    assert "2.0.0" in walker.tags(f"ghcr/{org.name}/web")  # a dry run deletes nothing
    # A package the run does not look at keeps its entries, in a dry run as in a real one.
    narrow = _run(
        env, config, *args, "--keep-last", "1", "--prune", "--dry-run", "--exclude-package", "web"
    )
    assert narrow.returncode == 0, narrow.stderr[-3000:]
    assert f"prune  {prefix}/{org.name}/web:2.0.0" in narrow.stdout
    assert f"prune  {prefix}/{org.name}/web:2.1.0" not in narrow.stdout

    report = tmp_path / "b.json"
    kept = _run(env, config, *args, "--keep-last", "1", "--prune", "--report", str(report))
    assert kept.returncode == 0, kept.stderr[-3000:]
    summary = json.loads(report.read_text())["summary"]
    assert summary["snapshots_forgotten"] == 2 and summary["tags_pruned"] == 1
    assert walker.tags(f"ghcr/{org.name}/web") == ["2.1.0", HISTORY_TAG]
    listed = json.loads(_run(env, config, "snapshots", "--dest", prefix, "--json").stdout)
    assert len(listed) == 1
    assert old not in _reachable(walker, f"ghcr/{org.name}/app")  # left for the collector
    for tag, manifest in org.tags["app"].items():
        assert walker.walk(f"ghcr/{org.name}/app", tag).digest == manifest.digest


def test_a_backup_made_in_shards_is_listed_and_restored_as_a_whole(
    small_org: tuple[SmallOrg, GitHubStandIn],
    empty: LiveRegistry,
    source: LiveRegistry,
    pat: str,
    tmp_path: Path,
) -> None:
    """Each shard keeps its own series; --shard-count N lists and restores all N together,
    each shard from its latest snapshot at or before --as-of."""
    org, stand_in = small_org
    config = docker_config_for(tmp_path / "docker")
    env = _env(pat, stand_in, source)
    layout = f"oci:{tmp_path / 'layout'}"
    # Of 4 shards, app belongs to shard 3 and web to shard 1 (sha256 of the name, mod 4).
    shards = ["--shard-count", "4"]

    def back_up() -> None:
        for index in range(4):
            args = ["--org", org.name, "--dest", layout, "--all-patches", "--shard", f"{index}/4"]
            # Shards 0 and 2 hold no package: an empty shard is exit 3 without --allow-empty.
            result = _run(env, config, "registry", *args, "--allow-empty")
            assert result.returncode == 0, result.stderr[-3000:]

    back_up()
    first_digests = {(p, t): m.digest for p, tags in org.tags.items() for t, m in tags.items()}
    listed = json.loads(_run(env, config, "snapshots", "--dest", layout, "--json", *shards).stdout)
    by_shard = {entry["shard"]: entry["tags"] for entry in listed}
    assert by_shard == {"shard-0-of-4": 0, "shard-1-of-4": 2, "shard-2-of-4": 0, "shard-3-of-4": 3}
    after_first = max(entry["time"] for entry in listed)

    # Both shards' packages get a bad release; the next night backs them up.
    org.push("app", "1.1.0")
    org.push("web", "2.1.0")
    stand_in.owners[org.name] = org.api()
    back_up()
    table = _run(env, config, "snapshots", "--dest", layout, *shards)
    assert table.returncode == 0 and table.stdout.splitlines()[0].split()[:2] == ["shard", "id"]
    # The empty shards recorded one (empty) snapshot on the first night and none since: an
    # empty run never shadows the latest one.
    assert len(table.stdout.splitlines()) == 1 + 2 * 2 + 2 * 1

    # One shard's series alone is what --shard I/N restores; --shard-count restores them all.
    report_path = tmp_path / "restore.json"
    restored = _run(
        env,
        config,
        "restore",
        "--from",
        layout,
        "--to",
        f"http://{empty.host}/r",
        "--as-of",
        after_first,
        "--report",
        str(report_path),
        *shards,
    )
    assert restored.returncode == 0, restored.stderr[-3000:]
    chosen = json.loads(report_path.read_text())["summary"]["snapshots"]
    assert chosen == {entry["shard"]: entry["id"] for entry in listed}  # the first night's
    walker = empty.walker()
    for (package, tag), digest in first_digests.items():
        walked = walker.walk(f"r/{org.name}/{package}", tag)
        assert (walked.digest, walked.problems) == (digest, []), (package, tag)

    # A snapshot id names one shard's snapshot, so it does not go with --shard-count.
    mixed = _run(
        env,
        config,
        "restore",
        "--from",
        layout,
        "--to",
        f"http://{empty.host}/x",
        "--snapshot",
        chosen["shard-1-of-4"],
        *shards,
    )
    assert mixed.returncode == 2 and "--shard I/N" in mixed.stderr
    # A wrong shard count names the series it could not find.
    wrong = _run(
        env,
        config,
        "restore",
        "--from",
        layout,
        "--to",
        f"http://{empty.host}/y",
        "--shard-count",
        "3",
    )
    assert wrong.returncode == 2 and "shard-0-of-3" in wrong.stderr, wrong.stderr[-2000:]
    # So does one shard of a wrong count, and one shard with nothing at or before --as-of:
    # the registry's current tags are never restored in a snapshot's place.
    for args in (["--shard", "0/3"], ["--shard", "1/4", "--as-of", "2020-01-01"]):
        one = _run(
            env, config, "restore", "--from", layout, "--to", f"http://{empty.host}/z", *args
        )
        assert one.returncode == 2 and "has no snapshot" in one.stderr, (args, one.stderr[-2000:])
    assert empty.walker().tags("z/" + org.name + "/app") == []
