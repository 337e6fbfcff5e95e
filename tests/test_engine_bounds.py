"""The engine's bounds on what one image may make it hold: descriptors across nested indexes,
layers per manifest, and tasks in flight however many children an index lists."""

from __future__ import annotations

import asyncio
import hashlib
import json

from github_org_backup.copy.engine import CopyEngine
from github_org_backup.model.oci import OCI_INDEX, OCI_MANIFEST, parse_manifest
from github_org_backup.model.reference import Reference, Repository
from github_org_backup.model.specs import CopySpec
from github_org_backup.output.report import Stats
from tests.harness.memstore import FAST_POLICY, MemStore

NAME = "acme/app"


def _descriptor(media_type: str, raw: bytes) -> dict[str, object]:
    return {
        "mediaType": media_type,
        "digest": "sha256:" + hashlib.sha256(raw).hexdigest(),
        "size": len(raw),
    }


def _nested(src: MemStore, outer: int, inner: int) -> None:
    """``NAME:1``: an index of ``outer`` indexes, each listing ``inner`` (absent) manifests."""
    leaves = [_descriptor(OCI_MANIFEST, f"leaf {j}".encode()) for j in range(inner)]
    children = []
    for i in range(outer):
        body = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": leaves}
        raw = json.dumps(body | {"annotations": {"n": str(i)}}).encode()
        child = parse_manifest(raw, OCI_INDEX)
        src.manifests.setdefault(NAME, {})[child.digest] = child
        children.append(_descriptor(OCI_INDEX, raw))
    top = parse_manifest(
        json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}).encode(),
        OCI_INDEX,
    )
    src.manifests[NAME][top.digest] = top
    src.tags[NAME] = {"1": top.digest}


async def _copy(src: MemStore, dst: MemStore) -> tuple[str, str, int]:
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, len(asyncio.all_tasks()))
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    stores = {s.registry: s for s in (src, dst)}
    engine = CopyEngine(stores.__getitem__, Stats(), concurrency=16, policy=FAST_POLICY)
    spec = CopySpec(
        Reference(Repository(src.registry, NAME), "1", None),
        Reference(Repository(dst.registry, "b/" + NAME), "1"),
    )
    [result] = await engine.run([spec])
    watcher.cancel()
    return result.status, result.error or "", peak


async def test_nested_indexes_past_the_budget_fail_before_their_children() -> None:
    """4,096 indexes (the most one index may list) of one child each is one over the budget
    for the whole tree: the image fails before any grandchild is asked for."""
    src, dst = MemStore("src.test"), MemStore("dst.test")
    _nested(src, 4096, 1)
    status, error, _ = await _copy(src, dst)
    assert status == "failed"
    assert "past 4096 child manifests in all" in error, error
    assert dst.tags.get("b/" + NAME) is None


async def test_an_index_of_indexes_never_becomes_thousands_of_tasks() -> None:
    """100 indexes of 100 children: a pool of 16 per level is in flight, not 10,000 tasks."""
    src, dst = MemStore("src.test"), MemStore("dst.test")
    _nested(src, 100, 100)
    status, _, peak = await _copy(src, dst)
    assert status == "failed"
    assert peak < 2 * 16 * 16 + 50, peak  # a worker and a shared task per child in flight


async def test_nested_indexes_within_the_budget_are_fetched_not_refused() -> None:
    """3 indexes of 5 children: within the budget, so the (absent) children are asked for."""
    src, dst = MemStore("src.test"), MemStore("dst.test")
    _nested(src, 3, 5)
    status, error, _ = await _copy(src, dst)
    assert status == "failed" and "not found" in error, error


async def test_a_manifest_of_5000_layers_is_refused_before_any_blob() -> None:
    """Docker caps an image at 127 layers; 5,000 is refused before a blob is checked."""
    src, dst = MemStore("src.test"), MemStore("dst.test")
    config = b"{}"
    layers = [
        _descriptor("application/vnd.oci.image.layer.v1.tar", f"l{n}".encode()) for n in range(5000)
    ]
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": _descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": layers,
        }
    ).encode()
    manifest = parse_manifest(raw, OCI_MANIFEST)
    src.manifests[NAME] = {manifest.digest: manifest}
    src.tags[NAME] = {"1": manifest.digest}
    status, error, _ = await _copy(src, dst)
    assert status == "failed" and "5001 descriptors, over the limit of 4096" in error, error
    assert dst.calls["blob_size"] == dst.calls["write_blob"] == src.calls["read_blob"] == 0
