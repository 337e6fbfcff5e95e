"""Shard assignment, and the prune selection over snapshots kept in an in-memory backup."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs

from github_org_backup.errors import BackupError, UsageError
from github_org_backup.history.model import (
    Snapshot,
    TaggedImage,
    id_time,
    new_snapshot,
    snapshot_id,
)
from github_org_backup.history.prune import prune_run, prune_unreferenced
from github_org_backup.history.record import (
    Retention,
    carried_forward,
    kept_snapshots,
    record_results,
    record_run,
    tagged_images,
    unvouched_tags,
)
from github_org_backup.history.retention import select_kept
from github_org_backup.history.store import Snapshots
from github_org_backup.model.oci import OCI_INDEX, parse_manifest
from github_org_backup.model.reference import Reference, Repository
from github_org_backup.model.reserved import HISTORY_TAG, SNAPSHOT_REPOSITORY
from github_org_backup.model.results import ImageResult, MovedTag
from github_org_backup.settings.config import Shard, shard_from
from tests.harness.memstore import Image, MemStore, image, index

NAMES = [f"team-{n % 13}/service-{n}" for n in range(2000)]

# Shards


@pytest.mark.parametrize(
    ("name", "count", "owner"),
    [("acme/app", 4, 3), ("acme/lib", 4, 3), ("a/b/c", 4, 0), ("acme/lib", 3, 1), ("a/b/c", 3, 2)],
)
def test_a_package_belongs_to_the_same_shard_on_every_machine(
    name: str, count: int, owner: int
) -> None:
    """The owner is pinned: a sha256 of the name, never Python's per-process hash()."""
    assert [i for i in range(count) if Shard(i, count).owns(name)] == [owner]


def test_shard_assignment_does_not_depend_on_the_hash_seed() -> None:
    """Another interpreter with another PYTHONHASHSEED assigns every name the same way."""
    code = (
        "import sys; from github_org_backup.settings.config import Shard; "
        "print(''.join(str(next(i for i in range(5) if Shard(i, 5).owns(n))) "
        "for n in sys.stdin.read().split()))"
    )
    here = "".join(str(next(i for i in range(5) if Shard(i, 5).owns(n))) for n in NAMES[:300])
    for seed in ("1", "2"):
        there = subprocess.run(
            [sys.executable, "-c", code],
            input="\n".join(NAMES[:300]),
            capture_output=True,
            text=True,
            check=True,
            env=os.environ | {"PYTHONHASHSEED": seed},
        ).stdout.strip()
        assert there == here


@pytest.mark.parametrize("count", [1, 2, 3, 7, 16])
def test_shards_are_disjoint_complete_and_roughly_even(count: int) -> None:
    """Every name has exactly one owner among the shards, and no shard is starved."""
    owners = {name: [i for i in range(count) if Shard(i, count).owns(name)] for name in NAMES}
    assert all(len(found) == 1 for found in owners.values())
    sizes = [sum(1 for found in owners.values() if found == [i]) for i in range(count)]
    assert sum(sizes) == len(NAMES)
    assert min(sizes) > 0.8 * len(NAMES) / count


def test_each_shard_names_its_own_snapshot_series() -> None:
    """Shards run in parallel, so each keeps a series of its own."""
    assert Shard(2, 4).series == "shard-2-of-4"
    store = MemStore("backup.test")
    prefix = Repository(store.registry, "backup")
    series = Snapshots(store, prefix, Shard(2, 4).series).repository
    assert series == f"backup/{SNAPSHOT_REPOSITORY}/shard-2-of-4"


# Retention


DAY = datetime(2026, 3, 1, tzinfo=UTC)
IDS = [snapshot_id(DAY + timedelta(days=n)) for n in range(5)]


@pytest.mark.parametrize(
    ("keep_last", "keep_within", "kept"),
    [
        (None, None, IDS),
        (1, None, IDS[-1:]),
        (2, None, IDS[-2:]),
        (10, None, IDS),
        (None, timedelta(days=2), IDS[-2:]),
        (None, timedelta(hours=1), IDS[-1:]),
        (1, timedelta(days=3), IDS[-3:]),
    ],
)
def test_retention_keeps_the_latest_and_whatever_a_rule_keeps(
    keep_last: int | None, keep_within: timedelta | None, kept: list[str]
) -> None:
    """No rule keeps all; otherwise the union of the rules, and always the latest."""
    now = DAY + timedelta(days=4, hours=12)
    chosen = select_kept(IDS, keep_last=keep_last, keep_within=keep_within, now=now)
    assert chosen == set(kept)


def test_the_latest_snapshot_is_kept_even_outside_keep_within() -> None:
    """A backup that has not run for a year still keeps its last snapshot."""
    later = DAY + timedelta(days=365)
    assert select_kept(IDS, keep_within=timedelta(days=7), now=later) == {IDS[-1]}
    assert select_kept([], keep_last=3) == set()


# Prune


def tagged(relative: str, tag: str, img: Image) -> TaggedImage:
    return TaggedImage(relative, tag, img.digest, img.manifest.media_type, img.manifest.size)


class Backup:
    """A backup prefix in memory, with ``acme/app`` holding tags the test chooses."""

    def __init__(self) -> None:
        self.store = MemStore("backup.test")
        self.prefix = Repository(self.store.registry, "backup")
        self.snapshots = Snapshots(self.store, self.prefix)
        self.images = {label: image(label.encode()) for label in ("a", "b", "c")}

    def tag(self, tag: str, label: str, repository: str = "acme/app") -> None:
        self.store.add_image(f"backup/{repository}", tag, self.images[label])

    def tags(self, repository: str = "acme/app") -> list[str]:
        return sorted(self.store.tags.get(f"backup/{repository}", {}))

    def snapshot(self, day: int, **tags: str) -> Snapshot:
        images = [tagged("acme/app", tag, self.images[label]) for tag, label in tags.items()]
        return new_snapshot("ghcr.io/acme", images, DAY + timedelta(days=day))


async def test_prune_deletes_only_tags_no_kept_snapshot_names() -> None:
    """Named tags, tags whose digest is named under another tag, and the history tag stay."""
    backup = Backup()
    for tag, label in (("1", "a"), ("2", "b"), ("old", "c"), ("alias", "a")):
        backup.tag(tag, label)
    backup.store.tags["backup/acme/app"][HISTORY_TAG] = backup.images["a"].digest
    kept = [backup.snapshot(0, **{"1": "a", "2": "b"})]
    forgotten = backup.snapshot(-1, **{"1": "b", "2": "b", "old": "c", "alias": "a"}).images
    history = TaggedImage("acme/app", HISTORY_TAG, backup.images["a"].digest, "x", 1)
    pruned = await prune_unreferenced(
        backup.store, backup.prefix, kept, [*forgotten, history], dry_run=False
    )
    assert pruned.pruned == ("acme/app:old",)
    assert [(i.tag, i.digest) for i in pruned.remaining] == [("alias", backup.images["a"].digest)]
    assert backup.tags() == sorted(["1", "2", "alias", HISTORY_TAG])


async def test_a_tag_an_older_kept_snapshot_names_is_not_pruned() -> None:
    """Every kept snapshot protects what it names, not only the latest."""
    backup = Backup()
    backup.tag("1", "a")
    backup.tag("2", "b")
    kept = [backup.snapshot(0, **{"1": "a", "2": "b"}), backup.snapshot(1, **{"1": "a"})]
    forgotten = backup.snapshot(-1, **{"1": "a", "2": "b"}).images
    pruned = await prune_unreferenced(backup.store, backup.prefix, kept, forgotten, dry_run=False)
    assert pruned.pruned == ()
    assert backup.tags() == ["1", "2"]


async def test_the_snapshot_repository_itself_is_never_pruned() -> None:
    """Snapshots are tags too, but they are what prune decides by: they are left alone."""
    backup = Backup()
    backup.tag("1", "a")
    await backup.snapshots.save(backup.snapshot(0, **{"1": "a"}))
    kept = [backup.snapshot(5, **{"1": "a"})]
    ids = [TaggedImage(SNAPSHOT_REPOSITORY, i, backup.images["a"].digest, "x", 1) for i in IDS]
    await prune_unreferenced(backup.store, backup.prefix, kept, ids, dry_run=False)
    assert await backup.snapshots.ids() == [IDS[0]]


async def test_a_dry_run_lists_what_would_go_and_deletes_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--dry-run prints each tag it would delete and leaves every tag in place."""
    backup = Backup()
    backup.tag("1", "a")
    backup.tag("gone", "b")
    kept = [backup.snapshot(0, **{"1": "a"})]
    forgotten = backup.snapshot(-1, **{"1": "a", "gone": "b"}).images
    pruned = await prune_unreferenced(backup.store, backup.prefix, kept, forgotten, dry_run=True)
    assert pruned.pruned == ("acme/app:gone",)
    assert backup.tags() == ["1", "gone"] and backup.store.calls["delete_tag"] == 0
    assert "prune  http://backup.test/backup/acme/app:gone" in capsys.readouterr().out


async def test_prune_without_a_snapshot_deletes_nothing_and_says_why() -> None:
    """With no snapshot to decide by, prune refuses rather than deleting everything."""
    backup = Backup()
    backup.tag("1", "a")
    with pytest.raises(BackupError, match="has no snapshot yet"):
        await prune_unreferenced(
            backup.store, backup.prefix, [], backup.snapshot(0, **{"1": "a"}).images, dry_run=False
        )
    assert backup.tags() == ["1"]


async def test_retention_then_prune_removes_what_only_forgotten_snapshots_named() -> None:
    """Two runs, keep-last 1: the first snapshot is forgotten, its history entries dropped, and
    the tag only it named is pruned; the moved tag's new digest stays."""
    backup = Backup()
    backup.tag("1", "a")
    backup.tag("2", "b")
    first = await record_run(
        backup.snapshots,
        None,
        "ghcr.io/acme",
        [tagged("acme/app", "1", backup.images["a"]), tagged("acme/app", "2", backup.images["b"])],
        Retention(),
    )
    history = backup.store.tag_digest("backup/acme/app", HISTORY_TAG)
    assert history is not None
    entries = {d.digest for d in backup.store.manifests["backup/acme/app"][history].children()}
    assert entries == {backup.images["a"].digest, backup.images["b"].digest}

    backup.tag("1", "c")  # the source moved tag 1 and deleted tag 2
    ids = await backup.snapshots.ids()
    while snapshot_id(datetime.now(UTC)) in ids:  # ids have millisecond resolution
        await asyncio.sleep(0.001)
    second = await record_run(
        backup.snapshots,
        first.snapshot,
        "ghcr.io/acme",
        [tagged("acme/app", "1", backup.images["c"])],
        Retention(keep_last=1),
    )
    assert second.forgotten == [first.snapshot.id]
    assert second.moved == [
        MovedTag("acme/app:1", backup.images["a"].digest, backup.images["c"].digest)
    ]
    history = backup.store.tag_digest("backup/acme/app", HISTORY_TAG)
    assert history is not None
    index = backup.store.manifests["backup/acme/app"][history]
    assert index.media_type == OCI_INDEX
    assert {d.digest for d in index.children()} == {backup.images["c"].digest}

    kept = await kept_snapshots(backup.snapshots, Retention())
    assert [s.id for s in kept] == [second.snapshot.id]
    candidates = await backup.snapshots.forgotten_tags()
    assert [(i.tag, i.digest) for i in candidates] == [("2", backup.images["b"].digest)]
    pruned = await prune_unreferenced(backup.store, backup.prefix, kept, candidates, dry_run=False)
    assert pruned.pruned == ("acme/app:2",)
    assert backup.tags() == sorted(["1", HISTORY_TAG])


async def test_a_run_lists_the_snapshots_once_and_reads_each_once() -> None:
    """A registry run reads the latest snapshot, records its own (reading every kept one when
    the tags changed), then prunes by the kept ones: one listing, one read per snapshot."""
    backup = Backup()
    for tag, label in (("1", "a"), ("2", "b"), ("3", "c")):
        backup.tag(tag, label)
    writer = Snapshots(backup.store, backup.prefix)
    for day, label in enumerate("ab"):
        await writer.save(backup.snapshot(day, **{"1": label}))
    backup.store.calls.clear()

    run = Snapshots(backup.store, backup.prefix)
    previous = await run.latest()
    history = await record_run(
        run, previous, "ghcr.io/acme", [tagged("acme/app", "1", backup.images["c"])], Retention()
    )
    kept = await kept_snapshots(run, Retention())
    assert [s.id for s in kept][-1] == history.snapshot.id and len(kept) == 3
    assert backup.store.calls["list_tags"] == 1
    assert backup.store.calls["get_manifest"] == 2  # the two older snapshots, once each
    assert await Snapshots(backup.store, backup.prefix).ids() == [s.id for s in kept]


def test_an_image_the_report_holds_no_whole_descriptor_for_keeps_its_previous_entry() -> None:
    """A skipped tag reported without a size or media type is not in the new snapshot's own
    entries, so it must be carried forward, or prune would take it for a source deletion."""
    backup = Backup()
    previous = backup.snapshot(0, **{"1": "a", "2": "b", "3": "c"})
    a = backup.images["a"]
    dest = backup.prefix.child("acme/app")
    source = Reference(Repository(backup.prefix.registry, "ghcr/acme/app"), "1")
    report = [
        ImageResult(source, Reference(dest, "1"), a.digest, "skipped", None, 0.0,
                    a.manifest.media_type, a.manifest.size),
        ImageResult(source, Reference(dest, "2"), "sha256:" + "0" * 64, "skipped", None, 0.0,
                    "", -1),
        ImageResult(source, Reference(dest, "3"), None, "failed"),
    ]  # fmt: skip
    images = tagged_images(report, backup.prefix)
    assert [(i.repository, i.tag) for i in images] == [("acme/app", "1")]
    unvouched = unvouched_tags(report, backup.prefix, images)
    assert unvouched == {("acme/app", "2"), ("acme/app", "3")}
    kept = carried_forward(previous, images, lambda i: (i.repository, i.tag) in unvouched)
    assert sorted(i.tag for i in kept) == ["2", "3"]


async def test_a_tag_on_a_platform_manifest_of_a_kept_index_is_not_pruned() -> None:
    """``1.0-amd64`` points at a child of the kept ``1.0`` index: deleting it through its
    manifest would break ``1.0``, so only the tag nothing reaches goes."""
    backup = Backup()
    amd64, arm64 = image(b"amd64"), image(b"arm64")
    multi = index([("linux/amd64", amd64), ("linux/arm64", arm64)])
    backup.store.add_image("backup/acme/app", "1.0", multi)
    backup.store.add_image("backup/acme/app", "1.0-amd64", amd64)
    backup.tag("stale", "c")
    kept = [new_snapshot("ghcr.io/acme", [tagged("acme/app", "1.0", multi)], DAY)]
    forgotten = [
        tagged("acme/app", "1.0-amd64", amd64),
        tagged("acme/app", "stale", backup.images["c"]),
    ]
    pruned = await prune_unreferenced(backup.store, backup.prefix, kept, forgotten, dry_run=False)
    assert pruned.pruned == ("acme/app:stale",)
    assert backup.tags() == ["1.0", "1.0-amd64"]


async def test_a_new_shard_series_keeps_what_the_old_series_protects() -> None:
    """Switching to shards (or to another count) starts a new snapshot series. Its history
    writes keep the entries the old series names, and a digest both name stays until both
    drop it; prune, deciding by the new series, leaves what the history reaches."""
    backup = Backup()
    for tag, label in (("1", "a"), ("2", "b")):
        backup.tag(tag, label)
    old = Snapshots(backup.store, backup.prefix)
    a, b, c = (backup.images[x] for x in "abc")

    def entries() -> dict[str, str]:
        digest = backup.store.tag_digest("backup/acme/app", HISTORY_TAG)
        assert digest is not None
        history = backup.store.manifests["backup/acme/app"][digest]
        return {d.digest: d.annotations["io.github-org-backup.series"] for d in history.children()}

    first = await record_run(old, None, "ghcr.io/acme", [tagged("acme/app", "1", a)], Retention())
    await asyncio.sleep(0.002)
    await record_run(old, first.snapshot, "ghcr.io/acme", [tagged("acme/app", "1", b)], Retention())
    assert entries() == {a.digest: "unsharded", b.digest: "unsharded"}

    shard = Snapshots(backup.store, backup.prefix, Shard(1, 2).series)
    one = await record_run(shard, None, "ghcr.io/acme", [tagged("acme/app", "1", b)], Retention())
    assert entries() == {a.digest: "unsharded", b.digest: "shard-1-of-2,unsharded"}

    backup.tag("1", "c")
    await asyncio.sleep(0.002)
    two = await record_run(
        shard, one.snapshot, "ghcr.io/acme", [tagged("acme/app", "1", c)], Retention(keep_last=1)
    )
    assert two.forgotten == [one.snapshot.id]
    # The shard series dropped b; the unsharded series still names it, and a.
    assert entries() == {a.digest: "unsharded", b.digest: "unsharded", c.digest: "shard-1-of-2"}

    backup.tag("old-a", "a")
    junk = image(b"named by nothing")
    backup.store.add_image("backup/acme/app", "junk", junk)
    pruned = await prune_unreferenced(
        backup.store,
        backup.prefix,
        await kept_snapshots(shard, Retention()),
        [
            *await shard.forgotten_tags(),
            tagged("acme/app", "old-a", a),
            tagged("acme/app", "junk", junk),
        ],
        dry_run=False,
        series=shard.series,
    )
    assert pruned.pruned == ("acme/app:junk",)
    assert backup.tags() == ["1", "2", HISTORY_TAG, "old-a"]


@pytest.mark.parametrize(
    ("flags", "env", "expected"),
    [
        ({"shard_count": "2"}, {"BACKUP_SHARD": "0/4", "JOB_COMPLETION_INDEX": "1"}, Shard(1, 2)),
        ({"shard": "2/4"}, {"BACKUP_SHARD_COUNT": "8", "JOB_COMPLETION_INDEX": "1"}, Shard(2, 4)),
        ({}, {"BACKUP_SHARD_COUNT": "8", "JOB_COMPLETION_INDEX": "5"}, Shard(5, 8)),
        ({}, {}, None),
    ],
)
def test_a_shard_flag_beats_the_environment(
    flags: dict[str, str], env: dict[str, str], expected: Shard | None
) -> None:
    args = argparse.Namespace(shard=flags.get("shard"), shard_count=flags.get("shard_count"))
    assert shard_from(args, env) == expected


def test_both_shard_variables_without_a_flag_are_a_usage_error() -> None:
    args = argparse.Namespace(shard=None, shard_count=None)
    with pytest.raises(UsageError, match="both set"):
        shard_from(args, {"BACKUP_SHARD": "3/4", "BACKUP_SHARD_COUNT": "8"})


def _history_entries(backup: Backup) -> dict[str, str | None]:
    """digest -> its series annotation, for acme/app's history index."""
    digest = backup.store.tag_digest("backup/acme/app", HISTORY_TAG)
    assert digest is not None
    history = backup.store.manifests["backup/acme/app"][digest]
    return {d.digest: d.annotations.get("io.github-org-backup.series") for d in history.children()}


async def test_history_entries_written_before_series_were_recorded_survive_a_new_series() -> None:
    """A backup upgraded from a version whose histories had no series annotation, then
    sharded: the new series neither drops nor prunes what the old snapshots name."""
    backup = Backup()
    for tag, label in (("1", "b"), ("old", "a")):
        backup.tag(tag, label)
    a, b, c = (backup.images[x] for x in "abc")
    old = Snapshots(backup.store, backup.prefix)
    await old.save(backup.snapshot(0, **{"1": "a"}))
    await old.save(backup.snapshot(1, **{"1": "b"}))
    legacy = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": i.manifest.media_type,
                    "digest": i.digest,
                    "size": i.manifest.size,
                    "annotations": {"io.github-org-backup.tags": "1"},
                }
                for i in sorted((a, b), key=lambda i: i.digest)
            ],
        }
    ).encode()
    await backup.store.put_manifest(
        "backup/acme/app", HISTORY_TAG, parse_manifest(legacy, OCI_INDEX)
    )

    shard = Snapshots(backup.store, backup.prefix, Shard(1, 2).series)
    backup.tag("1", "c")
    await record_run(shard, None, "ghcr.io/acme", [tagged("acme/app", "1", c)], Retention())
    assert _history_entries(backup) == {
        a.digest: "legacy",
        b.digest: "legacy",
        c.digest: "shard-1-of-2",
    }
    pruned = await prune_unreferenced(
        backup.store,
        backup.prefix,
        await kept_snapshots(shard, Retention()),
        [tagged("acme/app", "old", a)],
        dry_run=False,
        series=shard.series,
    )
    assert pruned.pruned == () and "old" in backup.tags()


async def test_a_crash_before_the_snapshot_is_saved_leaves_every_stored_snapshot_protected() -> (
    None
):
    """Retention would forget two snapshots; the run dies before saving its own. The
    history still names every digest any stored snapshot names."""
    backup = Backup()
    for tag, label in (("1", "a"), ("2", "b"), ("3", "c")):
        backup.tag(tag, label)
    snapshots = Snapshots(backup.store, backup.prefix)
    a, b, c = (backup.images[x] for x in "abc")
    first = await record_run(
        snapshots, None, "ghcr.io/acme", [tagged("acme/app", "1", a)], Retention()
    )
    await asyncio.sleep(0.002)
    second = await record_run(
        snapshots, first.snapshot, "ghcr.io/acme", [tagged("acme/app", "1", b)], Retention()
    )

    async def killed(_snapshot: Snapshot) -> None:
        raise OSError("killed")

    snapshots.save = killed  # type: ignore[method-assign,assignment]
    await asyncio.sleep(0.002)
    with pytest.raises(OSError, match="killed"):
        await record_run(
            snapshots,
            second.snapshot,
            "ghcr.io/acme",
            [tagged("acme/app", "1", c)],
            Retention(keep_last=1),
        )
    stored = [await Snapshots(backup.store, backup.prefix).load(i) for i in await snapshots.ids()]
    assert len(stored) == 2
    assert {d for s in stored for d in s.digests} <= set(_history_entries(backup))


def test_restore_takes_only_the_snapshot_tags_include_tag_matches_in_full() -> None:
    """--include-tag is a full match: ``1\\.0`` takes 1.0, not 1.0.1; other packages stay out."""
    from github_org_backup.commands.restore import _specs_from_snapshots
    from github_org_backup.plan.policy import PackageFilter, TagPolicy

    backup = Backup()
    snapshot = new_snapshot(
        "ghcr.io/acme",
        [
            tagged("acme/app", "1.0", backup.images["a"]),
            tagged("acme/app", "1.0.1", backup.images["b"]),
            tagged("acme/web", "1.0", backup.images["c"]),
        ],
        DAY,
    )
    target = Repository(backup.store.registry, "restored")
    specs = _specs_from_snapshots(
        [snapshot],
        backup.prefix,
        target,
        PackageFilter(("acme/app",)),
        TagPolicy.from_patterns([r"1\.0"]),
    )
    assert [(str(s.destination), s.source.digest) for s in specs] == [
        (str(target.child("acme/app")) + ":1.0", backup.images["a"].digest)
    ]


def test_retention_says_why_it_keeps_each_snapshot() -> None:
    """Each kept snapshot comes with its reasons; a forgotten one is absent."""
    now = id_time(IDS[-1]) + timedelta(hours=1)
    kept = Retention(keep_last=2, keep_within=timedelta(days=1, hours=2)).apply(IDS, now=now)
    assert kept == {IDS[-2]: ("last", "within"), IDS[-1]: ("latest", "last", "within")}
    assert Retention(keep_last=1).apply(IDS)[IDS[-1]] == ("latest", "last")
    assert set(Retention().apply(IDS).values()) == {("no policy",)}
    assert set(kept) == select_kept(
        IDS, keep_last=2, keep_within=timedelta(days=1, hours=2), now=now
    )


async def _two_nights(backup: Backup) -> Snapshot:
    """Night one holds 1 -> a and 2 -> b; the source then moves 1 to c and deletes 2."""
    backup.tag("1", "a")
    backup.tag("2", "b")
    first = await record_run(
        backup.snapshots,
        None,
        "ghcr.io/acme",
        [tagged("acme/app", "1", backup.images["a"]), tagged("acme/app", "2", backup.images["b"])],
        Retention(),
    )
    backup.tag("1", "c")
    while snapshot_id(datetime.now(UTC)) == first.snapshot.id:
        await asyncio.sleep(0.001)
    return first.snapshot


async def test_a_dry_run_decides_what_the_real_run_does_and_writes_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Through the same record and prune: the same forgotten snapshots, the same moved tags,
    the same forgotten-tags list and the same tags pruned; the dry run changes no tag."""
    decided = []
    for dry_run in (True, False):
        backup = Backup()
        previous = await _two_nights(backup)
        before = {name: dict(tags) for name, tags in backup.store.tags.items()}
        capsys.readouterr()
        images = [tagged("acme/app", "1", backup.images["c"])]
        with capture_logs() as logs:
            history = await record_results(
                backup.snapshots,
                "ghcr.io/acme",
                images,
                Retention(keep_last=1),
                keep=lambda _image: False,
                dry_run=dry_run,
            )
            result = await prune_run(
                backup.snapshots, history, leave=lambda _image: False, dry_run=dry_run
            )
        assert history.forgotten == [previous.id]
        if dry_run:
            assert backup.store.tags == before
            printed = capsys.readouterr().out.splitlines()
            assert [line for line in printed if "prune" in line] == [
                f"prune  {backup.prefix}/acme/app:2"
            ]
        else:
            assert backup.tags() == ["1", HISTORY_TAG]
        (applied,) = [e for e in logs if e["event"] == "retention_applied"]
        assert applied["dry_run"] is dry_run and applied["forgotten"] == [previous.id]
        decided.append(
            (
                history.moved,
                [(i.repository, i.tag, i.digest) for i in history.snapshot.images],
                history.ledger,
                result.pruned,
            )
        )
    assert decided[0] == decided[1]
    assert decided[0][3] == ("acme/app:2",)
