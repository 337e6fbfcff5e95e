"""The copy engine in-process, between two in-memory stores: no registry, no subprocess."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from github_org_backup.copy.engine import CopyEngine
from github_org_backup.errors import RegistryError
from github_org_backup.model.reference import Reference, Repository
from github_org_backup.model.specs import CopySpec
from github_org_backup.output.report import ImageResult, Stats
from github_org_backup.stores.protocol import UploadSession
from tests.harness.memstore import FAST_POLICY, Event, Image, MemStore, image, index

SHARED = b"a layer both images carry" * 4


def engine_for(*stores: MemStore, concurrency: int = 16) -> CopyEngine:
    by_registry = {store.registry: store for store in stores}
    return CopyEngine(by_registry.__getitem__, Stats(), concurrency=concurrency, policy=FAST_POLICY)


def spec(src: MemStore, name: str, tag: str, dst: MemStore, digest: str | None = None) -> CopySpec:
    """``src/name:tag`` to ``dst/backup/name:tag``."""
    return CopySpec(
        Reference(Repository(src.registry, name), tag, digest),
        Reference(Repository(dst.registry, f"backup/{name}"), tag),
    )


def statuses(results: list[ImageResult]) -> list[str]:
    return [result.status for result in results]


def two_images_sharing_a_layer() -> tuple[MemStore, MemStore, Image, Image]:
    src, dst = MemStore("src.test"), MemStore("dst.test")
    app, lib = image(SHARED, b"app only"), image(SHARED, b"lib only")
    src.add_image("acme/app", "1", app)
    src.add_image("acme/lib", "1", lib)
    return src, dst, app, lib


# One copy, then mounts


async def test_a_blob_two_repositories_share_crosses_once_and_is_mounted_once() -> None:
    """The shared layer is read and written once; the second repository mounts it."""
    src, dst, app, lib = two_images_sharing_a_layer()
    engine = engine_for(src, dst)
    results = await engine.run([spec(src, "acme/app", "1", dst), spec(src, "acme/lib", "1", dst)])
    assert statuses(results) == ["copied", "copied"]
    shared = next(d for d in app.blob_data if d in lib.blob_data)
    assert len([read for read in src.reads if read[1] == shared]) == 1
    assert [w[1] for w in dst.writes].count(shared) == 1
    kinds = sorted(e.kind for e in dst.events if e.digest == shared)
    assert kinds == ["blob", "mount"]
    assert dst.has("backup/acme/app", shared) and dst.has("backup/acme/lib", shared)
    assert engine.stats.blobs_mounted == 1
    assert engine.stats.blobs_copied == len(app.blob_data | lib.blob_data)
    unique_bytes = sum(len(data) for data in (app.blob_data | lib.blob_data).values())
    assert engine.stats.bytes_copied == unique_bytes


async def test_a_refused_mount_streams_into_the_session_the_mount_opened() -> None:
    """Where the destination will not mount, the blob is streamed again into the mount's session."""
    src, dst, app, lib = two_images_sharing_a_layer()
    dst.mounts = False
    engine = engine_for(src, dst)
    results = await engine.run([spec(src, "acme/app", "1", dst), spec(src, "acme/lib", "1", dst)])
    assert statuses(results) == ["copied", "copied"]
    shared = next(d for d in app.blob_data if d in lib.blob_data)
    shared_writes = [w for w in dst.writes if w[1] == shared]
    assert len(shared_writes) == 2
    sessions = [session for _, _, session in shared_writes]
    assert sessions[0] is None
    assert isinstance(sessions[1], UploadSession) and sessions[1].name == shared_writes[1][0]
    assert engine.stats.blobs_mounted == 0


async def test_a_second_run_skips_tags_that_already_match_after_one_lookup() -> None:
    """A tag whose digest already matches costs one resolve and writes nothing."""
    src, dst, app, _ = two_images_sharing_a_layer()
    first = await engine_for(src, dst).run([spec(src, "acme/app", "1", dst, app.digest)])
    assert statuses(first) == ["copied"]
    writes, reads = dst.calls["write_blob"] + dst.calls["put_manifest"], len(src.reads)
    again = engine_for(src, dst)
    second = await again.run([spec(src, "acme/app", "1", dst, app.digest)])
    assert statuses(second) == ["skipped"]
    assert second[0].digest == app.digest and second[0].size == app.manifest.size
    assert dst.calls["write_blob"] + dst.calls["put_manifest"] == writes
    assert len(src.reads) == reads and again.stats.images_skipped == 1


async def test_a_blob_already_at_the_destination_is_not_sent_again() -> None:
    """A blob the destination repository holds with the right size is skipped, not read."""
    src, dst, _, _ = two_images_sharing_a_layer()
    shared = dst.add_blob("backup/acme/app", SHARED)
    engine = engine_for(src, dst)
    assert statuses(await engine.run([spec(src, "acme/app", "1", dst)])) == ["copied"]
    assert all(digest != shared for _, digest, _ in src.reads)
    assert engine.stats.blobs_skipped == 1


async def test_a_blob_present_with_another_size_fails_only_its_image() -> None:
    """Content at the destination counts as present only if its size agrees with the descriptor."""
    src, dst, app, lib = two_images_sharing_a_layer()
    shared = next(d for d in app.blob_data if d in lib.blob_data)
    dst.blobs["backup/acme/app"] = {shared: b"short"}
    results = await engine_for(src, dst).run(
        [spec(src, "acme/app", "1", dst), spec(src, "acme/lib", "1", dst)]
    )
    assert statuses(results) == ["failed", "copied"]
    assert "is 5 bytes at" in (results[0].error or "")
    assert dst.tag_digest("backup/acme/app", "1") is None


# A failed shared task is retried by the next caller


async def test_a_failed_blob_task_is_retried_by_the_next_image_that_needs_it() -> None:
    """The first image fails on the shared blob; the next one starts a new task for it."""
    src, dst = MemStore("src.test"), MemStore("dst.test")
    first, second = image(SHARED, b"one"), image(SHARED, b"two")
    src.add_image("acme/app", "1", first)
    src.add_image("acme/app", "2", second)
    shared = next(d for d in first.blob_data if d in second.blob_data)
    dst.fail_write(shared, times=1, error=RegistryError("injected refusal", status=400))
    engine = engine_for(src, dst, concurrency=1)
    results = await engine.run([spec(src, "acme/app", "1", dst), spec(src, "acme/app", "2", dst)])
    assert statuses(results) == ["failed", "copied"]
    assert "injected refusal" in (results[0].error or "")
    assert [w[1] for w in dst.writes].count(shared) == 2
    assert dst.tag_digest("backup/acme/app", "2") == second.digest
    assert dst.tag_digest("backup/acme/app", "1") is None


async def test_a_failed_child_manifest_task_is_retried_by_the_next_index() -> None:
    """A child manifest whose write failed for one index is written again for the next index."""
    src, dst = MemStore("src.test"), MemStore("dst.test")
    amd64, arm64 = image(b"amd64 layer"), image(b"arm64 layer")
    one = index([("linux/amd64", amd64)])
    two = index([("linux/amd64", amd64), ("linux/arm64", arm64)])
    src.add_image("acme/app", "1", one)
    src.add_image("acme/app", "2", two)
    dst.fail_put_manifest(amd64.digest, times=1, error=RegistryError("injected", status=400))
    engine = engine_for(src, dst, concurrency=1)
    results = await engine.run([spec(src, "acme/app", "1", dst), spec(src, "acme/app", "2", dst)])
    assert statuses(results) == ["failed", "copied"]
    assert dst.has("backup/acme/app", amd64.digest)
    assert dst.tag_digest("backup/acme/app", "2") == two.digest


# Tags written last


def assert_content_before_tags(store: MemStore, images: dict[tuple[str, str], Image]) -> None:
    """Every tag event comes after every blob and manifest its image references, in its repo."""
    tags_seen = 0
    for position, event in enumerate(store.events):
        arrived = {
            e.digest
            for e in store.events[:position]
            if e.name == event.name and e.kind in ("blob", "mount", "manifest")
        }
        if event.kind == "tag":
            assert event.tag is not None
            needed = images[(event.name, event.tag)].references()
            assert needed <= arrived, f"{event} written before {sorted(needed - arrived)}"
            tags_seen += 1
        elif event.kind == "manifest":
            manifest = store.manifests[event.name][event.digest]
            assert {d.digest for d in manifest.blobs()} <= arrived
            assert {d.digest for d in manifest.children()} <= arrived
    assert tags_seen == len(images)


async def test_every_tag_is_written_after_everything_it_references() -> None:
    """Blobs, then child manifests, then the index, then the tag, for every image of a run."""
    src = MemStore("src.test")
    dst = MemStore("dst.test", check_references=False)  # the order must not rest on the registry
    amd64, arm64 = image(SHARED, b"amd64"), image(SHARED, b"arm64")
    multi = index([("linux/amd64", amd64), ("linux/arm64", arm64)])
    plain = image(SHARED, b"plain")
    src.add_image("acme/multi", "1", multi)
    src.add_image("acme/plain", "1", plain)
    src.add_image("acme/plain", "2", plain)
    specs = [
        spec(src, "acme/multi", "1", dst),
        spec(src, "acme/plain", "1", dst),
        spec(src, "acme/plain", "2", dst),
    ]
    results = await engine_for(src, dst).run(specs)
    assert statuses(results) == ["copied"] * 3
    assert_content_before_tags(
        dst,
        {
            ("backup/acme/multi", "1"): multi,
            ("backup/acme/plain", "1"): plain,
            ("backup/acme/plain", "2"): plain,
        },
    )
    tag_event = dst.events.index(Event("tag", "backup/acme/multi", multi.digest, "1"))
    children = [Event("manifest", "backup/acme/multi", c.digest) for c in (amd64, arm64)]
    assert max(dst.events.index(child) for child in children) < tag_event


async def test_an_image_whose_layer_fails_gets_no_tag_and_the_others_do() -> None:
    """A layer that cannot be written leaves its tag unwritten and stops no other image."""
    src, dst = MemStore("src.test"), MemStore("dst.test")
    broken, fine = image(b"doomed layer"), image(b"fine layer")
    src.add_image("acme/broken", "1", broken)
    src.add_image("acme/fine", "1", fine)
    doomed = next(d for d, data in broken.blob_data.items() if data == b"doomed layer")
    dst.fail_write(doomed, times=99, error=RegistryError("refused", status=400))
    results = await engine_for(src, dst).run(
        [spec(src, "acme/broken", "1", dst), spec(src, "acme/fine", "1", dst)]
    )
    assert statuses(results) == ["failed", "copied"]
    assert dst.tag_digest("backup/acme/broken", "1") is None
    assert not [e for e in dst.events if e.name == "backup/acme/broken" and e.kind == "tag"]
    assert dst.tag_digest("backup/acme/fine", "1") == fine.digest


# Stop and abort


async def test_stop_lets_the_image_in_flight_finish_and_starts_no_other() -> None:
    """After stop(), the running image is tagged and the queued one fails as not started."""
    src, dst, app, _ = two_images_sharing_a_layer()
    dst.hold_writes.clear()
    engine = engine_for(src, dst, concurrency=1)
    run = asyncio.create_task(
        engine.run([spec(src, "acme/app", "1", dst), spec(src, "acme/lib", "1", dst)])
    )
    await asyncio.wait_for(dst.write_started.wait(), 10)
    engine.stop()
    dst.hold_writes.set()
    results = await asyncio.wait_for(run, 10)
    assert statuses(results) == ["copied", "failed"]
    assert results[1].error == "not started: the run was stopped"
    assert dst.tag_digest("backup/acme/app", "1") == app.digest
    assert dst.tag_digest("backup/acme/lib", "1") is None
    assert engine.stats.images_failed == 1


async def test_stop_during_a_streamed_spec_list_takes_no_further_spec() -> None:
    """With specs from an async source, stop() ends the intake: later specs are never counted."""
    src, dst, _, _ = two_images_sharing_a_layer()
    dst.hold_writes.clear()
    engine = engine_for(src, dst)

    async def specs() -> AsyncIterator[CopySpec]:
        yield spec(src, "acme/app", "1", dst)
        await asyncio.wait_for(dst.write_started.wait(), 10)
        engine.stop()  # as a SIGTERM arriving between two specs would
        dst.hold_writes.set()
        yield spec(src, "acme/lib", "1", dst)

    results = await engine.run(specs())
    assert statuses(results) == ["copied"]
    assert engine.stats.images_total == 1
    assert "backup/acme/lib" not in dst.tags


async def test_abort_abandons_the_image_in_flight_and_writes_no_tag() -> None:
    """abort() cancels a blob write in progress; the image fails and nothing is tagged."""
    src, dst, _, _ = two_images_sharing_a_layer()
    dst.hold_writes.clear()
    engine = engine_for(src, dst)
    run = asyncio.create_task(engine.run([spec(src, "acme/app", "1", dst)]))
    await asyncio.wait_for(dst.write_started.wait(), 10)
    engine.abort()
    results = await asyncio.wait_for(run, 10)
    assert statuses(results) == ["failed"]
    assert results[0].error == "abandoned at the end of the grace period"
    assert dst.tags == {} and not [e for e in dst.events if e.kind in ("tag", "blob")]
    assert dst.blobs.get("backup/acme/app", {}) == {}
