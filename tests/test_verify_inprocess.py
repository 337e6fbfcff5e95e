"""verify in-process over an in-memory store and a layout: each descriptor judged once, every
tag that reaches a problem named."""

from __future__ import annotations

from pathlib import Path

from github_org_backup.copy.engine import CopyEngine
from github_org_backup.copy.verify import Verifier
from github_org_backup.errors import RegistryError
from github_org_backup.model.reference import Reference, Registry, Repository
from github_org_backup.model.specs import CopySpec
from github_org_backup.output.report import Stats
from github_org_backup.stores.layout import LayoutStore
from github_org_backup.stores.protocol import Store
from tests.harness.memstore import MemStore, image, index

SHARED = b"shared by both tags" * 3


def backup_with_two_tags() -> tuple[MemStore, str]:
    """``acme/app:1`` and ``:2`` sharing one layer; returns the store and that layer's digest."""
    store = MemStore("backup.test")
    one, two = image(SHARED, b"one"), image(SHARED, b"two")
    store.add_image("acme/app", "1", one)
    store.add_image("acme/app", "2", two)
    shared = next(d for d in one.blob_data if d in two.blob_data)
    return store, shared


TAGS = [("acme/app", "1"), ("acme/app", "2")]


async def test_a_whole_backup_has_no_problem_and_each_blob_is_looked_up_once() -> None:
    """A complete backup verifies clean; the shared layer's size is asked for once."""
    store, _ = backup_with_two_tags()
    result = await Verifier(store).verify(TAGS)
    assert result.problems == []
    assert (result.tags, result.manifests) == (2, 2)
    assert store.calls["blob_size"] == 5  # shared + two configs + two own layers
    assert store.calls["read_blob"] == 0


async def test_a_missing_shared_blob_is_reported_under_every_tag_that_needs_it() -> None:
    """One missing layer is one check, reported for both tags that reach it."""
    store, shared = backup_with_two_tags()
    del store.blobs["acme/app"][shared]
    result = await Verifier(store).verify(TAGS)
    assert [str(p) for p in result.problems] == [
        f"http://backup.test/acme/app:1: blob {shared} missing",
        f"http://backup.test/acme/app:2: blob {shared} missing",
    ]


async def test_a_blob_of_the_wrong_size_is_reported_with_both_sizes() -> None:
    """A stored blob whose size disagrees with its descriptor is a problem naming both sizes."""
    store, shared = backup_with_two_tags()
    store.blobs["acme/app"][shared] = b"short"
    result = await Verifier(store).verify(TAGS[:1])
    assert [p.what for p in result.problems] == [
        f"blob {shared} is 5 bytes, expected {len(SHARED)}"
    ]


async def test_deep_mode_rehashes_what_a_size_check_cannot_see() -> None:
    """Same-size corruption passes the size check and fails the deep re-hash, hashed once."""
    store, shared = backup_with_two_tags()
    store.blobs["acme/app"][shared] = bytes(reversed(SHARED))
    assert (await Verifier(store).verify(TAGS)).problems == []
    deep = await Verifier(store, deep=True).verify(TAGS)
    assert len(deep.problems) == 2
    assert all(f"blob {shared} re-hashes to sha256:" in p.what for p in deep.problems)
    assert [r for r in store.reads if r[1] == shared] == [("acme/app", shared, 0)]


async def test_a_missing_tag_and_an_unreadable_store_are_problems_not_errors() -> None:
    """A tag that is absent, or a store that refuses to answer, is reported and never raised."""
    store, _ = backup_with_two_tags()

    class Refusing(MemStore):
        async def blob_size(self, name: str, digest: str) -> int | None:
            raise RegistryError("the registry answered 500 UNKNOWN")

    refusing = Refusing(
        "backup.test", blobs=store.blobs, manifests=store.manifests, tags=store.tags
    )
    result = await Verifier(refusing).verify([("acme/app", "1"), ("acme/app", "gone")])
    whats = [p.what for p in result.problems]
    assert "tag missing" in whats
    assert any("unreadable: the registry answered 500" in w for w in whats)


async def test_a_missing_child_manifest_is_reported_with_the_path_to_it() -> None:
    """A problem below an index names the hop through the child manifest that leads to it."""
    store = MemStore("backup.test")
    amd64, arm64 = image(b"amd64"), image(b"arm64")
    multi = index([("linux/amd64", amd64), ("linux/arm64", arm64)])
    store.add_image("acme/app", "1", multi)
    del store.manifests["acme/app"][arm64.digest]
    result = await Verifier(store).verify([("acme/app", "1")])
    assert len(result.problems) == 1
    problem = result.problems[0]
    assert problem.where == f"http://backup.test/acme/app:1 > {arm64.digest[:19]}"
    assert problem.what.startswith(f"manifest {arm64.digest} missing or damaged")


async def test_a_layout_the_engine_wrote_verifies_clean_deep(tmp_path: Path) -> None:
    """Copy in-process into a layout, then verify it deep: no problem, tags named as oci:DIR:."""
    src = MemStore("src.test")
    multi = index([("linux/amd64", image(SHARED, b"a")), ("linux/arm64", image(SHARED, b"b"))])
    src.add_image("acme/app", "1", multi)
    layout = LayoutStore(Registry.layout_at(str(tmp_path)))
    stores: dict[Registry, Store] = {src.registry: src, layout.registry: layout}
    spec = CopySpec(
        Reference(Repository(src.registry, "acme/app"), "1"),
        Reference(Repository(layout.registry, "acme/app"), "1"),
    )
    results = await CopyEngine(stores.__getitem__, Stats()).run([spec])
    assert [r.status for r in results] == ["copied"]
    result = await Verifier(layout, deep=True).verify([("acme/app", "1")])
    assert result.problems == [] and result.manifests == 3
    (tmp_path / "blobs" / "sha256" / multi.children[0].digest.partition(":")[2]).unlink()
    damaged = await Verifier(LayoutStore(layout.registry)).verify([("acme/app", "1")])
    assert [p.where for p in damaged.problems] == [
        f"oci:{tmp_path}:acme/app:1 > {multi.children[0].digest[:19]}"
    ]


async def test_a_refused_or_unreachable_registry_ends_the_check_not_as_a_problem() -> None:
    """Credentials refused on a blob, or the registry gone mid-walk, is not damage in the
    backup: the check ends with that error (exit 2), no problem is reported."""
    import pytest

    from github_org_backup.errors import AuthError, Unreachable

    for error in (
        AuthError("backup.test refused the credentials from DEST_USERNAME/DEST_PASSWORD"),
        Unreachable("cannot reach registry backup.test: connection refused (6 attempts)"),
    ):
        store, _ = backup_with_two_tags()

        async def refused(name: str, digest: str, error: Exception = error) -> int | None:
            raise error

        store.blob_size = refused  # type: ignore[method-assign]
        with pytest.raises(type(error)):
            await Verifier(store).verify(TAGS)
    store, shared = backup_with_two_tags()
    del store.blobs["acme/app"][shared]
    assert len((await Verifier(store).verify(TAGS)).problems) == 2  # damage is still a problem
