"""Round trips the copy engine waits for in a row, in-process between in-memory stores: the
tag check runs beside the copies, asks both sides at once, and a fresh destination is not
asked about each child manifest."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from github_org_backup.base.fanout import Window, both
from github_org_backup.copy.presence import LEARN, ManifestProbe, Probe
from github_org_backup.model.oci import Descriptor, Manifest
from tests.harness.memstore import MemStore, image, index
from tests.test_engine_inprocess import engine_for, spec, statuses


@dataclass
class _Meeting:
    """Both calls must be under way at once, or each waits in vain and the test fails."""

    started: set[str] = field(default_factory=set)
    both_started: asyncio.Event = field(default_factory=asyncio.Event)

    async def arrive(self, who: str) -> None:
        self.started.add(who)
        if len(self.started) == 2:
            self.both_started.set()
        await asyncio.wait_for(self.both_started.wait(), 1.0)


class _MeetingSource(MemStore):
    meeting: _Meeting | None = None

    async def get_manifest(
        self, name: str, identifier: str, expected: Descriptor | None = None
    ) -> Manifest:
        if self.meeting is not None and not identifier.startswith("sha256:"):
            await self.meeting.arrive("source GET")
        return await super().get_manifest(name, identifier, expected)


class _MeetingTarget(MemStore):
    meeting: _Meeting | None = None

    async def resolve_manifest(self, name: str, identifier: str) -> Descriptor | None:
        if self.meeting is not None and not identifier.startswith("sha256:"):
            await self.meeting.arrive("destination HEAD")
        return await super().resolve_manifest(name, identifier)


async def test_the_source_get_and_the_destination_head_of_a_tag_run_together() -> None:
    """An unpinned tag's check asks the source for its manifest and the destination for its
    tag in the same round trip, warm or cold."""
    src, dst = _MeetingSource("src.test"), _MeetingTarget("dst.test")
    src.add_image("acme/app", "1", image(b"layer"))
    for run in ("cold", "warm"):
        src.meeting = dst.meeting = meeting = _Meeting()
        results = await engine_for(src, dst).run([spec(src, "acme/app", "1", dst)])
        assert statuses(results) == ["copied" if run == "cold" else "skipped"], run
        assert meeting.started == {"source GET", "destination HEAD"}


async def test_unchanged_tags_are_checked_while_every_copy_slot_is_taken() -> None:
    """With one copy slot held by an image whose upload hangs, the unchanged tags behind it are
    still checked and done: the check does not wait for a slot."""
    src, dst = MemStore("src.test"), MemStore("dst.test")
    unchanged = [f"{n}" for n in range(8)]
    for tag in unchanged:
        src.add_image("acme/app", tag, image(b"old layer", config=tag.encode()))
    warm = engine_for(src, dst)
    assert (
        statuses(await warm.run([spec(src, "acme/app", t, dst) for t in unchanged]))
        == ["copied"] * 8
    )
    src.add_image("acme/app", "new", image(b"new layer"))
    dst.hold_writes.clear()
    engine = engine_for(src, dst, concurrency=1)
    specs = [spec(src, "acme/app", "new", dst)] + [spec(src, "acme/app", t, dst) for t in unchanged]
    run = asyncio.create_task(engine.run(specs))
    await asyncio.wait_for(dst.write_started.wait(), 1.0)
    for _ in range(50):
        if engine.stats.images_skipped == 8:
            break
        await asyncio.sleep(0.01)
    assert engine.stats.images_skipped == 8, "the checks waited for the copy slot"
    assert engine.stats.images_copied == 0
    dst.hold_writes.set()
    assert statuses(await run) == ["copied"] + ["skipped"] * 8


def _multi_arch(n: int) -> object:
    return index(
        [
            ("linux/amd64", image(f"amd64 {n}".encode(), config=f"amd64 config {n}".encode())),
            ("linux/arm64", image(f"arm64 {n}".encode(), config=f"arm64 config {n}".encode())),
        ]
    )


async def test_a_fresh_destination_is_not_asked_about_each_child_manifest() -> None:
    """Cold into an empty destination: the tags' HEADs all answer absent, so the children are
    copied without a HEAD each (one in ``SAMPLE`` still asked), and the copy is complete."""
    src, dst = MemStore("src.test"), MemStore("dst.test")
    tags = [f"1.{n}.0" for n in range(20)]
    for n, tag in enumerate(tags):
        src.add_image("acme/app", tag, _multi_arch(n))  # type: ignore[arg-type]
    engine = engine_for(src, dst, concurrency=4)
    results = await engine.run([spec(src, "acme/app", t, dst) for t in tags])
    assert statuses(results) == ["copied"] * 20
    children = 2 * len(tags)
    child_heads = dst.calls["resolve_manifest"] - len(tags)
    assert child_heads <= children // ManifestProbe.SAMPLE + 1, child_heads
    assert dst.calls["put_manifest"] == len(tags) + children
    for result in results:
        assert dst.tag_digest("backup/acme/app", result.destination.tag or "") == result.digest


async def test_children_already_at_the_destination_cost_requests_never_bytes() -> None:
    """A destination that holds the children but not the tags: a child copied without asking
    finds each of its blobs present, so no blob byte moves again."""
    src, dst = MemStore("src.test"), MemStore("dst.test")
    tags = [f"1.{n}.0" for n in range(12)]
    images = [_multi_arch(n) for n in range(12)]
    for tag, built in zip(tags, images, strict=True):
        src.add_image("acme/app", tag, built)  # type: ignore[arg-type]
    first = engine_for(src, dst)
    assert (
        statuses(await first.run([spec(src, "acme/app", t, dst) for t in tags])) == ["copied"] * 12
    )
    written = len(dst.writes)
    for tag in tags:
        dst.tags["backup/acme/app"].pop(tag)
    again = engine_for(src, dst)
    assert (
        statuses(await again.run([spec(src, "acme/app", t, dst) for t in tags])) == ["copied"] * 12
    )
    assert len(dst.writes) == written, "a blob crossed again"
    assert again.stats.bytes_copied == 0


def test_the_probe_asks_until_absent_answers_dominate_then_samples() -> None:
    probe = ManifestProbe()
    assert [probe.ask() for _ in range(3)] == [True] * 3
    for _ in range(LEARN):
        probe.record(present=False)
    asked = [probe.ask() for _ in range(4 * ManifestProbe.SAMPLE)]
    assert asked.count(True) == 4
    for _ in range(LEARN):
        probe.record(present=True)
    assert all(probe.ask() for _ in range(10)), "present answers bring the HEADs back"


async def test_both_cancels_the_other_when_one_fails_and_raises_the_failure() -> None:
    cancelled = asyncio.Event()

    async def fails() -> int:
        await asyncio.sleep(0)
        raise ValueError("first")

    async def hangs() -> int:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return 2

    async def one() -> int:
        return 1

    with pytest.raises(ValueError, match="first"):
        await both(fails(), hangs())
    assert cancelled.is_set()
    assert await both(one(), one()) == (1, 1)


async def test_a_window_place_left_early_lets_the_next_holder_in() -> None:
    window = Window(1)
    order: list[str] = []
    release = asyncio.Event()

    async def first() -> None:
        async with window.hold() as place:
            order.append("first in")
            place.leave()
            place.leave()  # leaving twice frees one place, not two
            await release.wait()
            order.append("first out")

    async def second() -> None:
        async with window.hold():
            order.append("second in")

    tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
    await asyncio.sleep(0.01)
    assert order == ["first in", "second in"]
    release.set()
    await asyncio.gather(*tasks)
    assert window._slots._value == 1


async def test_on_a_fresh_destination_the_upload_opens_with_the_blob_head() -> None:
    """Once absent answers dominate (and no mount has proved the self-mount check), a blob's
    HEAD and the POST of its upload go together; a blob found there after all has its session
    cancelled and no byte sent."""
    src, dst = MemStore("src.test"), MemStore("dst.test")
    dst.mounts = False
    tags = [str(n) for n in range(12)]
    for tag in tags:
        src.add_image("acme/app", tag, image(f"layer {tag}".encode(), config=tag.encode()))
    present = image(b"already there", config=b"present config")
    src.add_image("acme/app", "present", present)
    for digest, data in present.blob_data.items():
        dst.blobs.setdefault("backup/acme/app", {})[digest] = data
    engine = engine_for(src, dst, concurrency=1)
    results = await engine.run([spec(src, "acme/app", t, dst) for t in [*tags, "present"]])
    assert statuses(results) == ["copied"] * 13
    opened = [session for _, _, session in dst.writes if session is not None]
    assert dst.calls["start_upload"] >= 8 and len(opened) == dst.calls["start_upload"] - 2
    # The present image's config and layer, and the session of the one question whether
    # the destination mounts (it does not).
    assert dst.calls["cancel_upload"] == 3
    assert not [w for w in dst.writes if w[1] in present.blob_data]


def test_until_blobs_answer_the_manifests_say_whether_a_destination_is_fresh() -> None:
    """The tags' HEADs answer first: when they were all absent, the first blob checks open
    their uploads at once; blobs that then turn out present switch that off."""
    probe = Probe()
    assert not probe.eager
    for _ in range(LEARN):
        probe.manifests.record(present=False)
    assert probe.eager
    for _ in range(LEARN):
        probe.record(present=True)
    assert not probe.eager


async def test_a_fresh_destination_is_asked_once_whether_it_mounts() -> None:
    """After its first upload a fresh destination is asked to mount that blob into its own
    repository: where it does, later blobs are checked by that one POST instead of HEAD and
    POST; where it does not, the session it opened is cancelled and the HEADs go on."""
    for mounts in (True, False):
        src, dst = MemStore("src.test"), MemStore("dst.test")
        dst.mounts = mounts
        tags = [str(n) for n in range(16)]
        for tag in tags:
            src.add_image("acme/app", tag, image(f"layer {tag}".encode(), config=tag.encode()))
        engine = engine_for(src, dst, concurrency=1)
        results = await engine.run([spec(src, "acme/app", t, dst) for t in tags])
        assert statuses(results) == ["copied"] * 16
        probe = engine._blobs.probe(dst.registry)
        assert probe.mount_asked and probe.mounted is mounts and probe.mount_refused is not mounts
        blobs = 2 * len(tags)
        if mounts:
            assert dst.calls["blob_size"] < blobs // 4, dst.calls
            assert dst.calls["mount_blob"] > blobs // 2, dst.calls
        else:
            assert dst.calls["mount_blob"] == 1 and dst.calls["cancel_upload"] == 1
            assert dst.calls["blob_size"] == blobs
