"""The check window ahead of the copy slots, in-process: platform-filtered tags, manifests
too big to keep, the one image deadline, and stop/abort while images wait for a slot."""

from __future__ import annotations

import asyncio
import json

from github_org_backup.base.limits import Limits
from github_org_backup.copy.engine import CopyEngine
from github_org_backup.copy.examine import KEEP_MANIFEST_BYTES
from github_org_backup.model.oci import Descriptor, Manifest, Platform
from github_org_backup.model.specs import CopySpec
from github_org_backup.output.report import Stats
from tests.harness.memstore import FAST_POLICY, Image, MemStore, image, index
from tests.test_engine_inprocess import engine_for, spec, statuses


def _two_platforms() -> Image:
    return index(
        [
            ("linux/amd64", image(b"amd64 layer", config=b"amd64 config")),
            ("linux/arm64", image(b"arm64 layer", config=b"arm64 config")),
        ]
    )


async def test_a_platform_filtered_tag_is_copied_once_and_then_unchanged() -> None:
    """Pinned or not, the tag holds the filtered index; a rerun finds it unchanged."""
    for pinned in (False, True):
        src, dst = MemStore("src.test"), MemStore("dst.test")
        built = _two_platforms()
        src.add_image("acme/app", "1", built)
        digest = built.digest if pinned else None
        base = spec(src, "acme/app", "1", dst, digest)
        filtered = CopySpec(base.source, base.destination, (Platform.parse("linux/arm64"),))
        first = await engine_for(src, dst).run([filtered])
        assert statuses(first) == ["copied"], pinned
        assert first[0].digest is not None
        tagged = dst.manifests["backup/acme/app"][first[0].digest]
        assert [c.platform for c in tagged.children()] == [Platform.parse("linux/arm64")]
        assert first[0].digest != built.digest
        again = await engine_for(src, dst).run([filtered])
        assert statuses(again) == ["skipped"] and again[0].digest == first[0].digest


async def test_a_tag_manifest_too_big_to_keep_is_read_again_by_digest() -> None:
    """The check reads the tag's manifest; one over the keep limit is dropped while the image
    waits, and the copy reads it again by digest: the copy is whole."""
    src, dst = MemStore("src.test"), MemStore("dst.test")
    layers = [f"layer {n}".encode() for n in range(800)]
    big = image(*layers)
    assert len(big.manifest.raw) > KEEP_MANIFEST_BYTES
    src.add_image("acme/app", "1", big)
    results = await engine_for(src, dst).run([spec(src, "acme/app", "1", dst)])
    assert statuses(results) == ["copied"]
    assert src.calls["get_manifest"] == 2  # by tag in the check, by digest in the copy
    assert dst.tag_digest("backup/acme/app", "1") == big.digest
    assert json.loads(dst.manifests["backup/acme/app"][big.digest].raw)["layers"]


async def test_waiting_for_a_copy_slot_does_not_count_against_the_image_timeout() -> None:
    """One slot, held for longer than --image-timeout by a first image: the second waits
    that long for the slot and is still copied; the first, past its limit, fails."""
    src, dst = MemStore("src.test"), MemStore("dst.test")
    src.add_image("acme/app", "slow", image(b"slow layer"))
    src.add_image("acme/app", "next", image(b"next layer"))
    dst.hold_writes.clear()
    engine = CopyEngine(
        {s.registry: s for s in (src, dst)}.__getitem__,
        Stats(),
        concurrency=1,
        policy=FAST_POLICY,
        limits=Limits(image_timeout_s=0.3),
    )
    run = asyncio.create_task(
        engine.run([spec(src, "acme/app", "slow", dst), spec(src, "acme/app", "next", dst)])
    )
    await asyncio.wait_for(dst.write_started.wait(), 5)
    await asyncio.sleep(0.4)  # the slow one passes its limit holding the only slot
    dst.hold_writes.set()
    results = await asyncio.wait_for(run, 5)
    assert statuses(results) == ["failed", "copied"]
    assert "--image-timeout" in (results[0].error or "")


async def test_abort_says_not_started_for_images_that_never_had_a_copy_slot() -> None:
    """stop() then abort() with one slot: the image copying is abandoned; those checked and
    waiting for the slot were never started."""
    src, dst = MemStore("src.test"), MemStore("dst.test")
    for tag in ("a", "b", "c"):
        src.add_image("acme/app", tag, image(f"layer {tag}".encode()))
    dst.hold_writes.clear()
    engine = engine_for(src, dst, concurrency=1)
    run = asyncio.create_task(engine.run([spec(src, "acme/app", t, dst) for t in "abc"]))
    await asyncio.wait_for(dst.write_started.wait(), 5)
    await asyncio.sleep(0.05)  # b and c are checked and wait for the slot
    engine.stop()
    engine.abort()
    results = await asyncio.wait_for(run, 5)
    assert statuses(results) == ["failed"] * 3
    assert results[0].error == "abandoned at the end of the grace period"
    assert [r.error for r in results[1:]] == ["not started: the run was stopped"] * 2
    assert "backup/acme/app" not in dst.tags


class _CountingSource(MemStore):
    """Counts the manifest reads in flight at once (each waits a moment, as over a network)."""

    reading: int = 0
    peak: int = 0

    async def get_manifest(
        self, name: str, identifier: str, expected: Descriptor | None = None
    ) -> Manifest:
        self.reading += 1
        self.peak = max(self.peak, self.reading)
        try:
            await asyncio.sleep(0.01)
            return await super().get_manifest(name, identifier, expected)
        finally:
            self.reading -= 1


async def test_the_window_reads_at_most_concurrency_source_manifests_at_once() -> None:
    """A hostile source may serve 4 MiB manifests: however many tags are checked ahead of the
    copy slots, their source reads go --concurrency at a time."""
    src, dst = _CountingSource("src.test"), MemStore("dst.test")
    tags = [str(n) for n in range(40)]
    for tag in tags:
        src.add_image("acme/app", tag, image(f"layer {tag}".encode()))
    results = await engine_for(src, dst, concurrency=3).run(
        [spec(src, "acme/app", t, dst) for t in tags]
    )
    assert statuses(results) == ["copied"] * 40
    assert src.peak == 3
