"""Snapshots in-process: the artifact round trip, histories, retention and moved tags."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from github_org_backup.errors import UsageError
from github_org_backup.history.index import history_index
from github_org_backup.history.model import (
    Snapshot,
    TaggedImage,
    id_time,
    moved_tags,
    new_snapshot,
    parse_duration,
    snapshot_id,
)
from github_org_backup.history.retention import select_kept
from github_org_backup.history.store import Snapshots
from github_org_backup.model.oci import OCI_MANIFEST, digest_of
from github_org_backup.model.reference import Registry, Repository
from github_org_backup.model.reserved import HISTORY_TAG, SNAPSHOT_REPOSITORY
from github_org_backup.model.results import MovedTag
from github_org_backup.stores.layout import LayoutStore

T0 = datetime(2026, 11, 1, 3, 17, 0, tzinfo=UTC)


def _image(repository: str, tag: str, n: int) -> TaggedImage:
    return TaggedImage(repository, tag, digest_of(str(n).encode()), OCI_MANIFEST, 100 + n)


def test_ids_are_utc_and_sort_as_text() -> None:
    """Snapshot ids are fixed-width UTC timestamps: text order is time order."""
    moments = [T0 + timedelta(seconds=s, milliseconds=m) for s, m in ((0, 5), (0, 40), (9, 0))]
    ids = [snapshot_id(m) for m in moments]
    assert ids[0] == "20261101T031700.005Z"
    assert sorted(ids) == ids
    assert [id_time(i) for i in ids] == moments
    with pytest.raises(UsageError):
        id_time("2026-11-01")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90d", timedelta(days=90)),
        ("12h", timedelta(hours=12)),
        ("2w", timedelta(weeks=2)),
        ("1y30d", timedelta(days=395)),
        (" 7D ", timedelta(days=7)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    """--keep-within takes restic-style durations."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "90", "d", "1.5d", "90 days", "-1d", "1m"])
def test_bad_durations_are_usage_errors(text: str) -> None:
    """Anything else is refused with an example of what works."""
    with pytest.raises(UsageError, match="90d"):
        parse_duration(text)


DAYS = [snapshot_id(T0 + timedelta(days=d)) for d in range(10)]  # one snapshot a day


@pytest.mark.parametrize(
    ("keep_last", "keep_within", "kept_days"),
    [
        (None, None, range(10)),  # no policy keeps everything
        (1, None, [9]),
        (3, None, [7, 8, 9]),
        (20, None, range(10)),
        (0, None, [9]),  # the latest is always kept
        (None, timedelta(days=2), [7, 8, 9]),
        (None, timedelta(hours=1), [9]),
        (2, timedelta(days=3), [6, 7, 8, 9]),
    ],
)
def test_retention(keep_last: int | None, keep_within: timedelta | None, kept_days: Any) -> None:
    """--keep-last and --keep-within keep the union of what each keeps, and always the latest."""
    now = T0 + timedelta(days=9)
    kept = select_kept(DAYS, keep_last=keep_last, keep_within=keep_within, now=now)
    assert kept == {DAYS[d] for d in kept_days}


def test_moved_tags_compare_with_the_previous_snapshot() -> None:
    """A tag whose digest changed is reported with what it was and what it is now."""
    before = new_snapshot(
        "ghcr.io", [_image("acme/app", "1.2.3", 1), _image("acme/app", "1.3.0", 2)], T0
    )
    after = new_snapshot(
        "ghcr.io",
        [
            _image("acme/app", "1.2.3", 9),
            _image("acme/app", "1.3.0", 2),
            _image("acme/app", "2.0.0", 3),
        ],
        T0 + timedelta(days=1),
    )
    assert moved_tags(before, after) == [
        MovedTag("acme/app:1.2.3", _image("", "", 1).digest, _image("", "", 9).digest)
    ]
    assert moved_tags(None, after) == []


def test_history_index_depends_only_on_tags_and_digests() -> None:
    """The same tags and digests give the same history digest, whatever the order."""
    images = [
        _image("acme/app", "1.2.3", 1),
        _image("acme/app", "latest", 1),
        _image("acme/app", "1.2.3", 2),
    ]
    first, second = history_index(images), history_index(reversed(images))
    assert first.digest == second.digest
    entries = json.loads(first.raw)["manifests"]
    assert [e["digest"] for e in entries] == sorted({i.digest for i in images})
    assert {e["annotations"]["io.github-org-backup.tags"] for e in entries} == {
        "1.2.3,latest",
        "1.2.3",
    }


class _Counting:
    """A store wrapper that counts the calls that write."""

    def __init__(self, store: LayoutStore) -> None:
        self._store = store
        self.writes: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if name in ("put_manifest", "delete_tag", "write_blob"):
            self.writes.append(name)
        return attribute


async def test_snapshot_round_trip_in_a_layout(tmp_path: Path) -> None:
    """A saved snapshot lists, loads byte-for-byte equal, and is found by time."""
    store = LayoutStore(Registry.layout_at(str(tmp_path)))
    snapshots = Snapshots(store, Repository(store.registry, ""))
    assert await snapshots.ids() == [] and await snapshots.latest() is None
    first = new_snapshot("ghcr.io", [_image("acme/app", "1.0.0", 1)], T0)
    second = new_snapshot("ghcr.io", [_image("acme/app", "1.0.0", 2)], T0 + timedelta(days=1))
    for snapshot in (second, first):  # written out of order, listed in order
        await snapshots.save(snapshot)
    assert await snapshots.ids() == [first.id, second.id]
    assert await snapshots.load(first.id) == first
    assert (await snapshots.latest()) == second
    assert (await snapshots.at_or_before(T0 + timedelta(hours=23))) == first
    assert (await snapshots.at_or_before(T0 - timedelta(seconds=1))) is None
    assert SNAPSHOT_REPOSITORY in await store.list_repositories()
    await snapshots.forget(first.id)
    assert await snapshots.ids() == [second.id]
    with pytest.raises(UsageError, match="not found"):
        await snapshots.load(first.id)


async def test_snapshot_content_is_a_plain_json_artifact(tmp_path: Path) -> None:
    """The artifact's one layer is the snapshot's JSON: readable without this tool."""
    store = LayoutStore(Registry.layout_at(str(tmp_path)))
    snapshots = Snapshots(store, Repository(store.registry, "backup"))
    snapshot = new_snapshot("ghcr.io", [_image("acme/app", "1.0.0", 1)], T0)
    await snapshots.save(snapshot)
    manifest = await store.get_manifest(f"backup/{SNAPSHOT_REPOSITORY}", snapshot.id)
    layer = manifest.layers[0]
    document = json.loads((tmp_path / "blobs" / "sha256" / layer.digest.split(":")[1]).read_bytes())
    assert document["images"][0] == {
        "repository": "acme/app",
        "tag": "1.0.0",
        "digest": _image("", "", 1).digest,
        "mediaType": OCI_MANIFEST,
        "size": 101,
    }
    assert Snapshot.from_bytes(snapshot.to_bytes()) == snapshot


async def test_histories_are_written_only_when_they_change(tmp_path: Path) -> None:
    """An unchanged repository costs no write; a moved tag rewrites only its own history."""
    digests: dict[tuple[str, str], TaggedImage] = {}
    store = LayoutStore(Registry.layout_at(str(tmp_path)))
    snapshots = Snapshots(store, Repository(store.registry, ""))
    config = await snapshots._put_blob(b"{}", "application/vnd.oci.empty.v1+json")
    from github_org_backup.model.oci import parse_manifest

    async def push(repository: str, tag: str, n: int) -> TaggedImage:
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": config.media_type, "digest": config.digest, "size": 2},
            "layers": [],
            "annotations": {"n": str(n)},
        }
        manifest = parse_manifest(json.dumps(document).encode(), OCI_MANIFEST)
        await store.put_manifest(repository, tag, manifest)
        image = TaggedImage(repository, tag, manifest.digest, OCI_MANIFEST, manifest.size)
        digests[(repository, tag)] = image
        return image

    day1 = new_snapshot("ghcr.io", [await push("a/app", "1", 1), await push("b/app", "1", 2)], T0)
    counting = _Counting(store)
    written = await Snapshots(counting, snapshots.prefix).write_histories([], [day1])
    assert written == 2
    history_a = await store.resolve_manifest("a/app", HISTORY_TAG)
    assert history_a is not None

    day2 = new_snapshot("ghcr.io", day1.images, T0 + timedelta(days=1))
    counting = _Counting(store)
    assert await Snapshots(counting, snapshots.prefix).write_histories([day1], [day1, day2]) == 0
    assert counting.writes == []

    moved = await push("a/app", "1", 3)  # the source overwrote a/app:1
    day3 = new_snapshot("ghcr.io", [moved, day1.images[1]], T0 + timedelta(days=2))
    counting = _Counting(store)
    kept = [day1, day2, day3]
    assert await Snapshots(counting, snapshots.prefix).write_histories([day1, day2], kept) == 1
    history = await store.get_manifest("a/app", HISTORY_TAG)
    assert {d.digest for d in history.children()} == {day1.images[0].digest, moved.digest}
    # The overwritten image is still there by digest, referenced from a tag.
    assert await store.resolve_manifest("a/app", day1.images[0].digest) is not None

    # Forgetting day1 and day2 leaves only the current digest in a/app's history.
    assert await snapshots.write_histories(kept, [day3]) == 1
    history = await store.get_manifest("a/app", HISTORY_TAG)
    assert {d.digest for d in history.children()} == {moved.digest}


class _NoCatalog:
    """A store like ECR or GAR: everything works but listing repositories."""

    def __init__(self, store: LayoutStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def list_repositories(self) -> list[str]:
        from github_org_backup.errors import RegistryError

        raise RegistryError("list the catalog: HTTP 404 (this registry has no /v2/_catalog)")


async def test_without_a_catalog_the_latest_snapshot_names_the_tags(tmp_path: Path) -> None:
    """verify and restore walk the latest snapshot's tags when the registry cannot list them."""
    from github_org_backup.commands.tags import backup_tags
    from github_org_backup.plan.policy import PackageFilter

    store = LayoutStore(Registry.layout_at(str(tmp_path)))
    prefix = Repository(store.registry, "backup")
    snapshots = Snapshots(store, prefix)
    older = new_snapshot("ghcr.io", [_image("acme/gone", "1", 1)], T0)
    latest = new_snapshot(
        "ghcr.io",
        [_image("acme/app", "1.0.0", 2), _image("acme/web", "2.0", 3)],
        T0 + timedelta(days=1),
    )
    for snapshot in (older, latest):
        await snapshots.save(snapshot)
    no_catalog = _NoCatalog(store)
    found = await backup_tags(no_catalog, prefix, PackageFilter(()), None, None)
    assert sorted(found) == [("backup/acme/app", "1.0.0"), ("backup/acme/web", "2.0")]
    only_app = await backup_tags(no_catalog, prefix, PackageFilter(("acme/app",)), None, None)
    assert only_app == [("backup/acme/app", "1.0.0")]

    empty = LayoutStore(Registry.layout_at(str(tmp_path / "empty")))
    with pytest.raises(UsageError, match="--from-report"):
        await backup_tags(_NoCatalog(empty), prefix, PackageFilter(()), None, None)
