"""A hostile source against the tool's own names, and prune against what the tool never wrote.

A compromised account pushes a tag named like the history tag, or a package whose path lies
in the tool's namespace; a copy spec names a history tag as its destination; an older version
let a source overwrite a history tag; an operator keeps a tag of their own in a repository the
source also lists. None of these may cost the backup a digest or the operator a tag.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from github_org_backup.commands.copy import _refuse_reserved
from github_org_backup.history.index import is_history
from github_org_backup.history.model import TaggedImage
from github_org_backup.history.prune import prune_unreferenced
from github_org_backup.history.record import Retention, record_run
from github_org_backup.history.store import FORGOTTEN_MAX, Snapshots
from github_org_backup.model.packages import Owner, Package
from github_org_backup.model.reference import Reference, Registry, Repository, parse_reference
from github_org_backup.model.reserved import (
    HISTORY_TAG,
    SNAPSHOT_REPOSITORY,
    is_reserved,
    reserved_destination,
    reserved_path,
    reserved_tag,
)
from github_org_backup.model.specs import CopySpec
from github_org_backup.plan.package import plan_package
from github_org_backup.plan.policy import PackageFilter, TagPolicy
from github_org_backup.settings.config import RegistryConfig
from tests.conftest import LiveRegistry, docker_config_for
from tests.harness.github_api import GitHubStandIn, StandInPackage
from tests.harness.hostile import Measured, Sandbox, run_measured
from tests.harness.images import OCI_LAYER, Blob, Manifest, build_image
from tests.harness.memstore import MemStore, image

RSS_LIMIT = 200 * 2**20
DIGEST = "sha256:" + "a" * 64


# The reserved namespace, as a table


@pytest.mark.parametrize(
    ("tag", "reserved"),
    [
        (HISTORY_TAG, True),
        ("GitHub-Org-Backup.History", True),
        ("github-org-backup.anything", True),
        ("github-org-backup", False),  # the tool's own image, tagged by its name
        ("latest", False),
        ("history", False),
    ],
)
def test_a_tag_in_the_tools_namespace_is_reserved(tag: str, reserved: bool) -> None:
    """Every tag starting with ``github-org-backup.`` is the tool's, in any case."""
    assert (reserved_tag(tag) is not None) == reserved


@pytest.mark.parametrize(
    ("path", "reserved"),
    [
        (SNAPSHOT_REPOSITORY, True),
        (f"{SNAPSHOT_REPOSITORY}/shard-0-of-2", True),
        ("acme/snapshots.github-org-backup", True),  # another backup's prefix below this one
        ("acme/x.github-org-backup/app", True),
        ("acme/github-org-backup", False),  # the tool's own package
        ("acme/app", False),
    ],
)
def test_a_repository_in_the_tools_namespace_is_reserved(path: str, reserved: bool) -> None:
    """A path component ending in ``.github-org-backup`` is the tool's."""
    assert (reserved_path(path) is not None) == reserved
    assert is_reserved(path) == reserved


def _config(**policy: Any) -> RegistryConfig:
    return RegistryConfig(
        owner=Owner("orgs", "acme"),
        token="t",
        username="u",
        api_url="https://api.github.com",
        source=Registry("ghcr.io"),
        destination=Repository(Registry("backup.test"), "ghcr"),
        destination_credentials=None,
        policy=TagPolicy.from_patterns(**policy),
        packages=PackageFilter(),
        platforms=(),
        shard=None,
    )


def test_a_source_tag_named_like_the_history_tag_is_refused_whatever_the_policy() -> None:
    """``--include-tag '.*'`` keeps every tag, but never one in the tool's namespace: the
    package fails, names the tag, and its other tags are still planned."""
    package = Package("app", {"1.0.0": DIGEST, HISTORY_TAG: DIGEST}, 0)
    plan = plan_package(package, _config(include=[".*"]))
    assert [str(s.destination) for s in plan.specs] == ["backup.test/ghcr/acme/app:1.0.0"]
    assert plan.failed and [d.tag for d in plan.refused] == [HISTORY_TAG]
    assert HISTORY_TAG in (plan.refusal() or "") and "reserved" in (plan.refusal() or "")
    assert "refuse github-org-backup.history" in plan.render()


def test_thousands_of_reserved_tags_are_named_in_a_bounded_message() -> None:
    """A source pushing 5,000 reserved tags gets one failure naming three and a count."""
    tags = {f"github-org-backup.{n}": DIGEST for n in range(5000)}
    plan = plan_package(Package("app", tags, 0), _config())
    assert plan.specs == () and len(plan.refused) == 5000
    message = plan.refusal() or ""
    assert "and 4997 more such tags" in message and len(message) < 1000


def test_a_package_in_the_tools_namespace_fails_without_a_spec() -> None:
    """A package ``snapshots.github-org-backup`` would write another backup's snapshots."""
    plan = plan_package(Package(SNAPSHOT_REPOSITORY, {"1.0.0": DIGEST}, 0), _config())
    assert plan.failed and plan.specs == ()
    assert (plan.refusal() or "").startswith("refused: repository")


def test_a_copy_spec_naming_a_reserved_destination_fails_alone() -> None:
    """One spec writes a history tag, one a snapshots repository, one an ordinary tag: the
    first two are failed images with a reason, logged, and the third is copied."""
    src = parse_reference("ghcr.io/acme/app:1.0.0")
    specs = [
        CopySpec(src, parse_reference(f"backup.test/ghcr/acme/app:{HISTORY_TAG}")),
        CopySpec(src, parse_reference(f"backup.test/ghcr/{SNAPSHOT_REPOSITORY}:x")),
        CopySpec(src, parse_reference("backup.test/ghcr/acme/app:1.0.0")),
    ]
    with capture_logs() as logs:
        allowed, refused = _refuse_reserved(specs)
    assert allowed == specs[2:]
    assert [r.status for r in refused] == ["failed", "failed"]
    assert all((r.error or "").startswith("refused: ") for r in refused)
    assert [e["event"] for e in logs] == ["reserved_name_refused"] * 2
    assert reserved_destination(Reference(specs[2].destination.repository, "ok")) is None


# The history tag, checked on every run


@dataclass
class Memory:
    store: MemStore
    prefix: Repository

    @classmethod
    def make(cls) -> Memory:
        store = MemStore("backup.test")
        return cls(store, Repository(store.registry, "ghcr"))

    def snapshots(self) -> Snapshots:
        return Snapshots(self.store, self.prefix)

    def history(self) -> str | None:
        return self.store.tag_digest("ghcr/acme/app", HISTORY_TAG)


def _tagged(tag: str, img: Any) -> TaggedImage:
    return TaggedImage("acme/app", tag, img.digest, img.manifest.media_type, img.manifest.size)


async def test_an_unchanged_run_repairs_a_history_tag_a_source_overwrote() -> None:
    """A backup made before the name was reserved: a source image sits under the history tag.
    The next unchanged run puts the tool's history back, naming the kept digests, and logs it;
    the image that was there is not merged into it."""
    memory = Memory.make()
    one, intruder = image(b"one"), image(b"intruder")
    memory.store.add_image("ghcr/acme/app", "1", one)
    first = await record_run(memory.snapshots(), None, "s", [_tagged("1", one)], Retention())
    ours = memory.history()
    memory.store.add_image("ghcr/acme/app", HISTORY_TAG, intruder)  # what the old bug did
    with capture_logs() as logs:
        await asyncio.sleep(0.002)  # snapshot ids have millisecond resolution
        second = await record_run(
            memory.snapshots(), first.snapshot, "s", [_tagged("1", one)], Retention()
        )
    assert memory.history() == ours and second.histories_repaired == 1
    repaired = [e for e in logs if e["event"] == "history_repaired"]
    assert repaired and repaired[0]["reason"] == "not a history the tool wrote"
    manifest = await memory.store.get_manifest("ghcr/acme/app", HISTORY_TAG)
    assert is_history(manifest) and {d.digest for d in manifest.children()} == {one.digest}


async def test_an_unchanged_run_with_an_intact_history_reads_it_once_and_writes_nothing() -> None:
    """The every-run check costs one manifest read per repository, and no write."""
    memory = Memory.make()
    one = image(b"one")
    memory.store.add_image("ghcr/acme/app", "1", one)
    first = await record_run(memory.snapshots(), None, "s", [_tagged("1", one)], Retention())
    memory.store.calls.clear()
    await asyncio.sleep(0.002)  # snapshot ids have millisecond resolution
    again = await record_run(
        memory.snapshots(), first.snapshot, "s", [_tagged("1", one)], Retention()
    )
    assert again.histories_repaired == 0 and again.histories_written == 0
    history_reads = memory.store.calls["get_manifest"]
    assert history_reads == 1  # the history tag; no snapshot is read on an unchanged night
    assert memory.store.calls["put_manifest"] == 1  # the new snapshot only


async def test_a_deleted_history_tag_is_rewritten() -> None:
    """Someone deleted the history tag: the next run writes it again (reason ``missing``)."""
    memory = Memory.make()
    one = image(b"one")
    memory.store.add_image("ghcr/acme/app", "1", one)
    first = await record_run(memory.snapshots(), None, "s", [_tagged("1", one)], Retention())
    ours = memory.history()
    await memory.store.delete_tag("ghcr/acme/app", HISTORY_TAG)
    with capture_logs() as logs:
        await asyncio.sleep(0.002)  # snapshot ids have millisecond resolution
        await record_run(memory.snapshots(), first.snapshot, "s", [_tagged("1", one)], Retention())
    assert memory.history() == ours
    assert [e["reason"] for e in logs if e["event"] == "history_repaired"] == ["missing"]


async def test_a_repair_whose_digests_were_collected_protects_the_rest_and_names_the_lost() -> None:
    """The poisoned history let a collector take an overwritten image. The repair cannot name
    it (the store refuses an index with a missing child): it writes the entries still present,
    logs the lost digest, and the run is marked failed through ``lost``."""
    memory = Memory.make()
    memory.store.check_references = True
    old, new, intruder = image(b"old"), image(b"new"), image(b"intruder")
    memory.store.add_image("ghcr/acme/app", "1", old)
    first = await record_run(memory.snapshots(), None, "s", [_tagged("1", old)], Retention())
    memory.store.add_image("ghcr/acme/app", "1", new)  # the source moved tag 1
    await asyncio.sleep(0.002)  # snapshot ids have millisecond resolution
    second = await record_run(
        memory.snapshots(), first.snapshot, "s", [_tagged("1", new)], Retention()
    )
    memory.store.add_image("ghcr/acme/app", HISTORY_TAG, intruder)
    del memory.store.manifests["ghcr/acme/app"][old.digest]  # collected: nothing tagged it
    with capture_logs() as logs:
        await asyncio.sleep(0.002)  # snapshot ids have millisecond resolution
        third = await record_run(
            memory.snapshots(), second.snapshot, "s", [_tagged("1", new)], Retention()
        )
    assert third.lost == {"acme/app": [old.digest]}
    assert third.outcome().history_entries_lost == 1
    manifest = await memory.store.get_manifest("ghcr/acme/app", HISTORY_TAG)
    assert is_history(manifest) and [d.digest for d in manifest.children()] == [new.digest]
    (event,) = [e for e in logs if e["event"] == "history_entries_lost"]
    assert event["digests"] == [old.digest] and "copy them again" in event["hint"]


# Prune deletes only what the tool recorded


async def test_prune_never_deletes_a_tag_no_snapshot_recorded_or_one_re_pointed() -> None:
    """An operator's tag in a repository the tool writes, and a recorded tag the operator
    re-pointed, both stay; only the recorded tag at its recorded digest goes."""
    memory = Memory.make()
    one, two, mine = image(b"one"), image(b"two"), image(b"mine")
    for tag, img in (("1", one), ("2", two), ("keep-me", mine), ("moved", mine)):
        memory.store.add_image("ghcr/acme/app", tag, img)
    kept = [(await record_run(memory.snapshots(), None, "s", [_tagged("1", one)], Retention()))]
    candidates = [_tagged("2", two), _tagged("moved", two)]  # the tool wrote moved -> two
    with capture_logs() as logs:
        result = await prune_unreferenced(
            memory.store, memory.prefix, [kept[0].snapshot], candidates, dry_run=False
        )
    assert result.pruned == ("acme/app:2",)
    tags = set(memory.store.tags["ghcr/acme/app"])
    assert {"1", "keep-me", "moved", HISTORY_TAG} <= tags and "2" not in tags
    assert any(e.get("tag") == "moved" and e["event"] == "prune_skipped" for e in logs)


async def test_prune_never_deletes_a_manifest_an_operators_tag_shares() -> None:
    """Deleting a forgotten tag deletes its manifest, so a tag the tool never wrote on the
    same digest keeps the candidate: the operator's tag survives."""
    memory = Memory.make()
    one, two = image(b"one"), image(b"two")
    for tag, img in (("1", one), ("2", two), ("keep-me", two)):
        memory.store.add_image("ghcr/acme/app", tag, img)
    kept = [(await record_run(memory.snapshots(), None, "s", [_tagged("1", one)], Retention()))]
    with capture_logs() as logs:
        result = await prune_unreferenced(
            memory.store, memory.prefix, [kept[0].snapshot], [_tagged("2", two)], dry_run=False
        )
    assert result.pruned == ()
    assert [c.tag for c in result.remaining] == ["2"]
    assert {"1", "2", "keep-me"} <= set(memory.store.tags["ghcr/acme/app"])
    skipped = [e for e in logs if e["event"] == "prune_skipped" and e["tag"] == "2"]
    assert skipped and "'keep-me'" in skipped[0]["reason"]


async def test_the_forgotten_tags_list_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past its cap the list keeps the cap and says so (those tags are then never pruned).
    The cap is lowered here; the default's entries fit the list's read bound many times."""
    import github_org_backup.history.store as snapshots_module

    one = TaggedImage("acme/app", "t" * 128, DIGEST, "application/vnd.oci.image.index.v1+json", 1)
    assert FORGOTTEN_MAX == 50_000
    assert FORGOTTEN_MAX * len(json.dumps(one.to_json())) < snapshots_module._FORGOTTEN_MAX_BYTES
    monkeypatch.setattr(snapshots_module, "FORGOTTEN_MAX", 5)
    memory = Memory.make()
    entries = [TaggedImage("acme/app", f"t{n}", DIGEST, "x", 1) for n in range(8)]
    with capture_logs() as logs:
        await memory.snapshots().save_forgotten_tags(entries)
    assert len(await memory.snapshots().forgotten_tags()) == 5
    assert [e["dropped"] for e in logs if e["event"] == "forgotten_tags_capped"] == [3]


# End to end: the installed CLI against real registries and a GitHub stand-in


class Source:
    """One owner on the GHCR-like source, listed by its own GitHub stand-in."""

    def __init__(self, registry: LiveRegistry, name: str) -> None:
        self.registry = registry
        self.name = name
        self.rng = random.Random(name)
        self.pusher = registry.pusher()
        self.packages: dict[str, dict[str, Manifest]] = {}

    def push(self, package: str, tag: str, label: str | None = None) -> Manifest:
        blob = Blob(self.rng.randbytes(300), OCI_LAYER)
        manifest = build_image(self.rng, "linux/amd64", [blob], False, 0, label or tag)
        self.pusher.push_manifest(f"{self.name}/{package}", tag, manifest)
        self.packages.setdefault(package, {})[tag] = manifest
        return manifest

    def api(self) -> list[StandInPackage]:
        listed = []
        for package, tags in self.packages.items():
            versions: dict[str, list[str]] = {}
            for tag, manifest in tags.items():
                versions.setdefault(manifest.digest, []).append(tag)
            listed.append(StandInPackage(package, list(versions.items())))
        return listed


@dataclass
class Scene:
    source: Source
    github: GitHubStandIn
    destination: LiveRegistry
    sandbox: Sandbox
    env: dict[str, str]
    prefix: str  # the backup's --dest
    path: str  # its repository path on the destination

    def publish(self) -> None:
        self.github.owners[self.source.name] = self.source.api()

    def run(self, *args: str) -> tuple[Measured, dict[str, Any]]:
        report = self.sandbox.root / "out" / "report.json"
        report.unlink(missing_ok=True)
        command = ["registry", "--org", self.source.name, "--dest", self.prefix]
        result = run_measured(
            [*command, "--no-discovery-cache", "--report", str(report), *args],
            self.sandbox,
            env=self.env,
            timeout=60,
        )
        assert "Traceback" not in result.stderr, str(result)
        assert result.peak_rss_bytes <= RSS_LIMIT and result.wall_s < 30, str(result)
        assert self.sandbox.files_outside(self.sandbox.root / "out") == []
        return result, json.loads(report.read_text()) if report.exists() else {}

    def tags(self, package: str) -> list[str]:
        return sorted(self.destination.walker().tags(f"{self.path}/{self.source.name}/{package}"))

    def tag_digest(self, package: str, tag: str) -> str | None:
        walker = self.destination.walker()
        raw = walker.manifest(f"{self.path}/{self.source.name}/{package}", tag)
        return None if raw is None else "sha256:" + hashlib.sha256(raw).hexdigest()


@pytest.fixture
def scene(
    source: LiveRegistry,
    destination: LiveRegistry,
    pat: str,
    namespace: str,
    tmp_path: Path,
) -> Iterator[Scene]:
    owner = Source(source, f"o{namespace}")
    github = GitHubStandIn(owners={}, tokens={pat: {"read:packages"}}).start()
    sandbox = Sandbox.make(tmp_path)
    (sandbox.root / "out").mkdir()
    env = {
        "GITHUB_TOKEN": pat,
        "GITHUB_API_URL": github.url,
        "SOURCE_REGISTRY": f"http://{source.host}",
        "DEST_USERNAME": destination.username,
        "DEST_PASSWORD": destination.password,
    }
    path = f"{namespace}/ghcr"
    yield Scene(owner, github, destination, sandbox, env, f"http://{destination.host}/{path}", path)
    github.stop()


def _events(stderr: str, event: str) -> list[dict[str, Any]]:
    found = []
    for line in stderr.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("event") == event:
            found.append(entry)
    return found


@pytest.mark.integration
def test_a_source_tag_named_like_the_history_tag_cannot_overwrite_the_history(
    scene: Scene,
) -> None:
    """The source pushes ``app:github-org-backup.history`` after the first night. The next
    run never asks the source for it, leaves the history index as the tool wrote it, fails
    the package by name (exit 1) and logs ``reserved_name_refused``; 1.0.0 is still current.
    A history tag overwritten anyway (as older versions let a source do) is repaired."""
    scene.source.push("app", "1.0.0")
    scene.publish()
    first, _ = scene.run()
    assert first.returncode == 0, str(first)
    history = scene.tag_digest("app", HISTORY_TAG)
    assert history is not None

    intruder = scene.source.push("app", HISTORY_TAG, "intruder")
    scene.publish()
    mark = scene.source.registry.process.mark()
    second, report = scene.run()
    assert second.returncode == 1, str(second)
    asked = [r.uri for r in scene.source.registry.process.requests_since(mark)]
    # What the attacker's registry received: no request for the reserved tag or its image.
    assert not [u for u in asked if HISTORY_TAG in u or intruder.digest in u], asked
    assert scene.tag_digest("app", HISTORY_TAG) == history != intruder.digest
    assert scene.tags("app") == ["1.0.0", HISTORY_TAG]
    (entry,) = [p for p in report["packages"] if p["package"] == "app"]
    assert entry["status"] == "failed" and HISTORY_TAG in entry["error"]
    assert entry["error"].startswith("refused: ") and entry["tags"] == 1
    assert _events(second.stderr, "reserved_name_refused")

    # A backup an older version let the source poison: the next run puts the history back.
    poisoned = Source(scene.destination, f"{scene.path}/{scene.source.name}")
    poisoned.pusher.push_manifest(f"{scene.path}/{scene.source.name}/app", HISTORY_TAG, intruder)
    third, report = scene.run()
    assert third.returncode == 1, str(third)
    assert scene.tag_digest("app", HISTORY_TAG) == history
    assert report["summary"]["histories_repaired"] == 1
    (repaired,) = _events(third.stderr, "history_repaired")
    assert repaired["was"] == intruder.digest and repaired["now"] == history


@pytest.mark.integration
def test_prune_without_retention_flags_deletes_nothing_and_never_an_operators_tag(
    scene: Scene,
) -> None:
    """The operator keeps ``legacy:keep-me`` in the backup; the source then lists a package
    ``legacy``. ``--prune`` alone backs up and deletes nothing, saying why; with
    ``--keep-last 1`` (after a run that forgot the snapshot naming it) it deletes only the tag
    the source deleted, which that snapshot recorded, and ``--dry-run`` names just that tag."""
    mine = Source(scene.destination, f"{scene.path}/{scene.source.name}")
    mine.push("legacy", "keep-me", "the operator's own")
    scene.source.push("legacy", "1.0.0")
    scene.source.push("legacy", "2.0.0")
    scene.publish()

    alone, report = scene.run("--prune")
    assert alone.returncode == 0, str(alone)
    assert report["summary"]["tags_pruned"] == 0 and report["pruned"] == []
    assert _events(alone.stderr, "prune_nothing")
    assert scene.tags("legacy") == ["1.0.0", "2.0.0", HISTORY_TAG, "keep-me"]
    dry_alone, _ = scene.run("--prune", "--dry-run")  # says so, and names no tag
    assert dry_alone.returncode == 0, str(dry_alone)
    assert "nothing pruned: --prune deletes only" in dry_alone.stdout
    assert not [line for line in dry_alone.stdout.splitlines() if line.startswith("prune")]

    del scene.source.packages["legacy"]["2.0.0"]  # the source deletes 2.0.0
    scene.publish()
    forget, report = scene.run("--keep-last", "1")  # retention without --prune deletes no tag
    assert forget.returncode == 0, str(forget)
    assert report["summary"]["snapshots_forgotten"] == 1
    assert scene.tags("legacy") == ["1.0.0", "2.0.0", HISTORY_TAG, "keep-me"]

    dry, _ = scene.run("--prune", "--keep-last", "1", "--dry-run")
    assert dry.returncode == 0, str(dry)
    planned = [line for line in dry.stdout.splitlines() if line.startswith("prune  ")]
    assert planned == [f"prune  {scene.prefix}/{scene.source.name}/legacy:2.0.0"], dry.stdout

    real, report = scene.run("--prune", "--keep-last", "1")
    assert real.returncode == 0, str(real)
    assert report["pruned"] == [f"{scene.source.name}/legacy:2.0.0"]
    assert scene.tags("legacy") == ["1.0.0", HISTORY_TAG, "keep-me"]
    snapshots = scene.destination.walker().tags(f"{scene.path}/{SNAPSHOT_REPOSITORY}")
    assert "forgotten-tags" in snapshots  # the list prune decides by, beside the snapshots
    checked = run_measured(["verify", "--dest", scene.prefix], scene.sandbox, env=scene.env)
    assert checked.returncode == 0, str(checked)


@pytest.mark.integration
def test_copy_specs_naming_a_history_tag_or_a_snapshots_repository_fail_alone(
    scene: Scene, source: LiveRegistry
) -> None:
    """A spec file (say, generated from a compromised listing) writes a history tag and a
    snapshots repository beside one ordinary tag: those two fail by name, nothing is written
    under the tool's names, and the ordinary tag is copied (exit 1)."""
    image_ = scene.source.push("app", "1.0.0")
    src = f"http://{source.host}/{scene.source.name}/app:1.0.0"
    base = f"{scene.prefix}/{scene.source.name}"
    specs = [
        {"src": src, "dst": f"{base}/app:{HISTORY_TAG}"},
        {"src": src, "dst": f"{scene.prefix}/{SNAPSHOT_REPOSITORY}:20261129T171538.123Z"},
        {"src": src, "dst": f"{base}/app:1.0.0"},
    ]
    out = scene.sandbox.root / "out"
    (out / "specs.json").write_text(json.dumps(specs))
    docker_config_for(scene.sandbox.docker, source, scene.destination)
    mark = source.process.mark()
    result = run_measured(
        ["copy", "--specs", str(out / "specs.json"), "--report", str(out / "copy.json")],
        scene.sandbox,
        timeout=60,
    )
    assert "Traceback" not in result.stderr, str(result)
    assert result.returncode == 1, str(result)
    assert result.peak_rss_bytes <= RSS_LIMIT and result.wall_s < 30, str(result)
    assert scene.sandbox.files_outside(out) == []
    report = json.loads((out / "copy.json").read_text())
    failed = {i["destination"]: i["error"] for i in report["images"] if i["status"] == "failed"}
    assert set(failed) == {specs[0]["dst"], specs[1]["dst"]}
    assert all(e.startswith("refused: ") and "reserved" in e for e in failed.values())
    assert report["summary"]["images_failed"] == 2
    assert len(_events(result.stderr, "reserved_name_refused")) == 2
    assert scene.tags("app") == ["1.0.0"]
    assert scene.tag_digest("app", "1.0.0") == image_.digest
    assert scene.destination.walker().tags(f"{scene.path}/{SNAPSHOT_REPOSITORY}") == []
    # The source was read once for the one copied image, never on behalf of a refused spec.
    manifests = [r for r in source.process.requests_since(mark) if "/manifests/" in r.uri]
    assert len({r.uri for r in manifests}) == 1


def test_restore_never_writes_a_reserved_tag_an_older_snapshot_recorded() -> None:
    """A snapshot written before names were reserved may hold the history tag: not restored."""
    from github_org_backup.commands.restore import _specs_from_snapshots
    from github_org_backup.history.model import Snapshot, TaggedImage
    from github_org_backup.model.reference import parse_repository
    from github_org_backup.plan.policy import PackageFilter

    digest = "sha256:" + "b" * 64
    images = tuple(
        TaggedImage("acme/app", tag, digest, "application/vnd.oci.image.manifest.v1+json", 10)
        for tag in ("1.0", "github-org-backup.history", "Github-Org-Backup.snapshot")
    )
    snapshot = Snapshot("20260101T000000Z", "ghcr.io/acme", "0.1.0", images)
    source = parse_repository("backup.example.com/ghcr")
    target = parse_repository("restore.example.com/ghcr")

    specs = _specs_from_snapshots([snapshot], source, target, PackageFilter(), None)

    assert [str(s.destination) for s in specs] == ["restore.example.com/ghcr/acme/app:1.0"]
