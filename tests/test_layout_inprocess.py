"""LayoutStore on a temporary directory, in-process: refs, atomic index.json, blobs, damage."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from github_org_backup.errors import (
    DigestMismatch,
    InvalidManifest,
    LayoutWriteError,
    NotFound,
    SizeMismatch,
    UsageError,
)
from github_org_backup.model.oci import OCI_MANIFEST, Descriptor, digest_of
from github_org_backup.model.reference import Registry
from github_org_backup.stores.layout import REF_NAME, LayoutStore, split_ref_name
from tests.harness.memstore import Image, image


def layout_at(root: Path) -> LayoutStore:
    return LayoutStore(Registry.layout_at(str(root)))


async def stream(data: bytes, pieces: int = 3) -> AsyncIterator[bytes]:
    step = max(1, len(data) // pieces)
    for start in range(0, len(data), step):
        yield data[start : start + step]


async def put_image(store: LayoutStore, name: str, tag: str, img: Image) -> None:
    for digest, data in img.all_blobs().items():
        await store.write_blob(name, Descriptor("", digest, len(data)), stream(data), None)
    for manifest in img.all_manifests()[:-1]:
        await store.put_manifest(name, manifest.digest, manifest)
    await store.put_manifest(name, tag, img.manifest)


def ref_names(root: Path) -> list[str]:
    index = json.loads((root / "index.json").read_bytes())
    return [entry["annotations"][REF_NAME] for entry in index["manifests"]]


def core(found: Descriptor | None) -> tuple[str, str, int] | None:
    """What a resolve must get right: media type, digest and size (not the ref annotation)."""
    return (found.media_type, found.digest, found.size) if found is not None else None


def temporary_files(root: Path) -> list[Path]:
    """Files a write left half-done: every temporary name contains ``.tmp-``."""
    return [path for path in root.rglob("*") if ".tmp-" in path.name]


async def test_a_tagged_image_is_an_index_entry_named_repository_colon_tag(tmp_path: Path) -> None:
    """put_manifest writes the blobs by digest and one index.json entry ``acme/app:1``."""
    store, img = layout_at(tmp_path), image(b"layer one", b"layer two")
    await put_image(store, "acme/app", "1", img)
    assert json.loads((tmp_path / "oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}
    assert ref_names(tmp_path) == ["acme/app:1"]
    for digest, data in img.blob_data.items():
        assert (tmp_path / "blobs" / "sha256" / digest.partition(":")[2]).read_bytes() == data
    found = await store.resolve_manifest("acme/app", "1")
    assert core(found) == (OCI_MANIFEST, img.digest, img.manifest.size)
    assert (await store.get_manifest("acme/app", "1")).raw == img.manifest.raw
    assert await store.list_tags("acme/app") == ["1"]
    assert await store.list_repositories() == ["acme/app"]


async def test_retagging_replaces_the_entry_and_deleting_keeps_the_blobs(tmp_path: Path) -> None:
    """A tag names one entry; delete_tag drops the entry but never a blob."""
    store, first, second = layout_at(tmp_path), image(b"first"), image(b"second")
    await put_image(store, "acme/app", "1", first)
    await put_image(store, "acme/app", "1", second)
    assert ref_names(tmp_path) == ["acme/app:1"]
    assert core(await store.resolve_manifest("acme/app", "1")) == core(second.manifest.descriptor())
    await store.delete_tag("acme/app", "1")
    assert ref_names(tmp_path) == []
    assert await store.resolve_manifest("acme/app", "1") is None
    assert await store.blob_size("acme/app", second.digest) == second.manifest.size
    reopened = layout_at(tmp_path)
    assert await reopened.list_tags("acme/app") == []


async def test_the_unnamed_repository_holds_plain_tags(tmp_path: Path) -> None:
    """Name ``""`` writes the plain ref ``latest``, as skopeo, umoci and regclient write it."""
    store, img = layout_at(tmp_path), image(b"plain")
    await put_image(store, "", "latest", img)
    assert ref_names(tmp_path) == ["latest"]
    assert await store.list_repositories() == [""]
    assert await store.list_tags("") == ["latest"]
    assert core(await store.resolve_manifest("", "latest")) == core(img.manifest.descriptor())


async def test_a_plain_ref_is_found_as_name_latest_when_no_such_tag_exists(tmp_path: Path) -> None:
    """``oci:DIR:myimage`` reads the plain ref ``myimage``, as skopeo means it."""
    store, img = layout_at(tmp_path), image(b"skopeo wrote me")
    await put_image(store, "", "myimage", img)
    assert core(await store.resolve_manifest("myimage", "latest")) == core(
        img.manifest.descriptor()
    )
    assert await store.resolve_manifest("myimage", "other") is None


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("acme/app:1.2.3", ("acme/app", "1.2.3")),
        ("latest", ("", "latest")),
        ("a:b:c", None),
        ("Acme/App:1", None),
        ("acme/app:", None),
        ("", None),
        (".hidden", None),
    ],
)
def test_ref_names_split_into_repository_and_tag(
    ref: str, expected: tuple[str, str] | None
) -> None:
    """Only ``repository:tag`` or a plain tag are refs this tool reads; anything else is None."""
    assert split_ref_name(ref) == expected


async def test_concurrent_tag_writes_all_reach_index_json(tmp_path: Path) -> None:
    """Group commit: twenty tags written at once are all in index.json, read back fresh."""
    store, img = layout_at(tmp_path), image(b"one image, many tags")
    await put_image(store, "acme/app", "0", img)
    tags = [str(n) for n in range(1, 21)]
    await asyncio.gather(*(store.put_manifest("acme/app", tag, img.manifest) for tag in tags))
    assert sorted(ref_names(tmp_path)) == sorted(["acme/app:0", *(f"acme/app:{t}" for t in tags)])
    assert len(await layout_at(tmp_path).list_tags("acme/app")) == 21
    assert temporary_files(tmp_path) == []


async def test_a_failed_index_write_leaves_the_previous_index_json_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If renaming a new index.json fails, the old one stays whole and no temp file is left."""
    store, img = layout_at(tmp_path), image(b"kept")
    await put_image(store, "acme/app", "1", img)
    before = (tmp_path / "index.json").read_bytes()
    real_replace = os.replace

    def refuse_index(source: str, target: str | Path) -> None:
        if Path(target).name == "index.json":
            raise OSError(28, "No space left on device")
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", refuse_index)
    with pytest.raises(LayoutWriteError) as refused:
        await store.put_manifest("acme/app", "2", img.manifest)
    assert str(refused.value) == (
        f"no space left on device writing {tmp_path / 'index.json'}: "
        "free space or choose another destination"
    )
    assert (tmp_path / "index.json").read_bytes() == before
    assert temporary_files(tmp_path) == []
    assert await store.resolve_manifest("acme/app", "2") is None  # nor in memory


async def test_a_blob_stream_cut_short_leaves_no_blob_and_no_temp_file(tmp_path: Path) -> None:
    """A blob is renamed into place only when complete: a short stream leaves nothing behind."""
    store, data = layout_at(tmp_path), b"0123456789" * 10
    blob = Descriptor("", digest_of(data), len(data))
    with pytest.raises(SizeMismatch, match="cut short"):
        await store.write_blob("acme/app", blob, stream(data[:50]), None)
    assert await store.blob_size("acme/app", blob.digest) is None
    assert temporary_files(tmp_path) == []


async def test_a_blob_already_present_is_not_rewritten(tmp_path: Path) -> None:
    """Writing a blob the layout has drains the stream and leaves the file untouched."""
    store, data = layout_at(tmp_path), b"present"
    blob = Descriptor("", digest_of(data), len(data))
    await store.write_blob("acme/app", blob, stream(data), None)
    path = tmp_path / "blobs" / "sha256" / blob.digest.partition(":")[2]
    inode = path.stat().st_ino
    drained: list[bytes] = []

    async def watched() -> AsyncIterator[bytes]:
        async for chunk in stream(data):
            drained.append(chunk)
            yield chunk

    await store.write_blob("other/repo", blob, watched(), None)
    assert path.stat().st_ino == inode and b"".join(drained) == data


async def test_blobs_read_from_an_offset_mount_for_free_and_miss_cleanly(tmp_path: Path) -> None:
    """read_blob starts at the offset; a present blob mounts (None); a missing one is NotFound."""
    store, data = layout_at(tmp_path), bytes(range(200))
    blob = Descriptor("", digest_of(data), len(data))
    await store.write_blob("acme/app", blob, stream(data), None)
    async with store.read_blob("acme/app", blob.digest, 150) as chunks:
        assert b"".join([chunk async for chunk in chunks]) == data[150:]
    assert await store.mount_blob("other/repo", blob.digest, "acme/app") is None
    missing = digest_of(b"missing")
    assert await store.mount_blob("other/repo", missing, "acme/app") is not None
    with pytest.raises(NotFound):
        async with store.read_blob("acme/app", missing):
            pass


async def test_a_corrupt_manifest_blob_is_a_digest_mismatch(tmp_path: Path) -> None:
    """Nothing read from the layout is trusted: changed manifest bytes fail their digest."""
    store, img = layout_at(tmp_path), image(b"will be damaged")
    await put_image(store, "acme/app", "1", img)
    path = tmp_path / "blobs" / "sha256" / img.digest.partition(":")[2]
    path.write_bytes(img.manifest.raw.replace(b"schemaVersion", b"schemaVersiom"))
    with pytest.raises(DigestMismatch, match="corrupt"):
        await layout_at(tmp_path).get_manifest("acme/app", "1")


async def test_a_manifest_without_media_type_takes_its_descriptors(tmp_path: Path) -> None:
    """A manifest with no top-level mediaType (umoci writes them) is read as its entry says."""
    store = layout_at(tmp_path)
    config = b"{}"
    document = {
        "schemaVersion": 2,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": digest_of(config),
            "size": len(config),
        },
        "layers": [],
    }
    raw = json.dumps(document).encode()
    for data in (config, raw):
        await store.write_blob("", Descriptor("", digest_of(data), len(data)), stream(data), None)
    entry = {
        "mediaType": OCI_MANIFEST,
        "digest": digest_of(raw),
        "size": len(raw),
        "annotations": {REF_NAME: "latest"},
    }
    (tmp_path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    manifest = await layout_at(tmp_path).get_manifest("", "latest")
    assert manifest.media_type == OCI_MANIFEST and manifest.raw == raw
    assert (await store.resolve_manifest("", digest_of(raw))) == Descriptor(
        "", digest_of(raw), len(raw)
    )


async def test_an_index_json_that_is_not_json_says_to_repair_it(tmp_path: Path) -> None:
    """A damaged index.json is an InvalidManifest naming the file, never a traceback."""
    (tmp_path / "index.json").write_text("{not json")
    with pytest.raises(InvalidManifest, match="index.json is not valid JSON.*repair or remove"):
        await layout_at(tmp_path).list_tags("acme/app")


async def test_a_directory_of_another_layout_version_is_refused(tmp_path: Path) -> None:
    """Writing into a directory whose oci-layout is not version 1.0.0 is a usage error."""
    (tmp_path / "oci-layout").write_text('{"imageLayoutVersion": "2.0.0"}')
    data = b"x"
    with pytest.raises(UsageError, match="not an OCI image layout version 1.0.0"):
        await layout_at(tmp_path).write_blob(
            "acme/app", Descriptor("", digest_of(data), 1), stream(data), None
        )


async def test_a_missing_manifest_is_not_found(tmp_path: Path) -> None:
    """A tag or digest the layout lacks resolves to None and reads as NotFound."""
    store = layout_at(tmp_path)
    assert await store.resolve_manifest("acme/app", digest_of(b"nothing")) is None
    with pytest.raises(NotFound, match="acme/app:1"):
        await store.get_manifest("acme/app", "1")
