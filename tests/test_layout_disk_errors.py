"""A layout's file system refusing a write (full, quota, file size limit): the image fails with
the path and what to do, no partial blob stays, and its bytes are not counted as copied."""

from __future__ import annotations

import errno
import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from github_org_backup.copy.engine import CopyEngine
from github_org_backup.errors import LayoutWriteError
from github_org_backup.model.oci import Descriptor, digest_of
from github_org_backup.model.reference import Reference, Registry, Repository
from github_org_backup.model.specs import CopySpec
from github_org_backup.output.report import Stats
from github_org_backup.stores import disk
from github_org_backup.stores.layout import LayoutStore
from github_org_backup.stores.protocol import Store
from tests.harness.clirun import ROOT
from tests.harness.memstore import FAST_POLICY, Image, MemStore, image
from tests.test_layout_inprocess import put_image, stream, temporary_files

BIG = bytes(range(256)) * 1200  # 300 KiB
SMALL = b"a small layer"


class _Refusing:
    """A file whose writes fail with ``code`` once ``room`` bytes are written, as a full disk's."""

    def __init__(self, handle: Any, room: int, code: int) -> None:
        self._handle, self._room, self._code = handle, room, code

    def write(self, data: bytes) -> int:
        if len(data) > self._room:
            raise OSError(self._code, os.strerror(self._code))
        self._room -= len(data)
        return int(self._handle.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


def refuse_writes(monkeypatch: pytest.MonkeyPatch, room: int, code: int = errno.ENOSPC) -> None:
    """Every blob file the layout streams into fails past ``room`` bytes."""

    class Os:
        def __getattr__(self, name: str) -> Any:
            return getattr(os, name)

        @staticmethod
        def fdopen(fd: int, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            return _Refusing(os.fdopen(fd, mode, *args, **kwargs), room, code)

    monkeypatch.setattr(disk, "os", Os())


def blob_path(root: Path, digest: str) -> Path:
    return root / "blobs" / "sha256" / digest.partition(":")[2]


@pytest.mark.parametrize(
    ("code", "words", "advice"),
    [
        (errno.ENOSPC, "no space left on device", "free space or choose another destination"),
        (errno.EDQUOT, "disk quota exceeded", "raise the quota"),
        (errno.EROFS, "read-only file system", "mount it writable"),
        (errno.EACCES, "permission denied", "let this user write there"),
    ],
)
async def test_a_refused_blob_write_names_the_path_and_leaves_no_partial_blob(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, words: str, advice: str
) -> None:
    store = LayoutStore(Registry.layout_at(str(tmp_path)))
    blob = Descriptor("", digest_of(BIG), len(BIG))
    refuse_writes(monkeypatch, room=100_000, code=code)
    with pytest.raises(LayoutWriteError) as refused:
        await store.write_blob("acme/app", blob, stream(BIG, pieces=10), None)
    message = str(refused.value)
    assert message.startswith(f"{words} writing {blob_path(tmp_path, blob.digest)}: ")
    assert advice in message
    assert not blob_path(tmp_path, blob.digest).exists()
    assert temporary_files(tmp_path) == []


def _spec(src: MemStore, name: str, dst: LayoutStore | MemStore) -> CopySpec:
    return CopySpec(
        Reference(Repository(src.registry, name), "1"),
        Reference(Repository(dst.registry, f"backup/{name}"), "1"),
    )


def _bytes(img: Image) -> int:
    return sum(len(data) for data in img.all_blobs().values())


async def test_a_full_disk_fails_only_its_image_whose_bytes_are_not_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the engine into a layout: the image whose layer does not fit fails with the
    layout path; the other lands; bytes_copied counts only the image that landed."""
    src = MemStore("src.test", chunk_size=4096)
    big, small = image(BIG), image(SMALL)
    src.add_image("acme/big", "1", big)
    src.add_image("acme/small", "1", small)
    dst = LayoutStore(Registry.layout_at(str(tmp_path)))
    stores: dict[Registry, Store] = {src.registry: src, dst.registry: dst}
    engine = CopyEngine(stores.__getitem__, Stats(), policy=FAST_POLICY)
    refuse_writes(monkeypatch, room=100_000)
    results = await engine.run([_spec(src, "acme/big", dst), _spec(src, "acme/small", dst)])
    assert [r.status for r in results] == ["failed", "copied"]
    layer = next(d for d, data in big.blob_data.items() if data == BIG)
    assert results[0].error == (
        f"no space left on device writing {blob_path(tmp_path, layer)}: "
        "free space or choose another destination"
    )
    assert not blob_path(tmp_path, layer).exists() and temporary_files(tmp_path) == []
    assert await dst.resolve_manifest("backup/acme/big", "1") is None
    assert engine.stats.bytes_copied == _bytes(small)
    assert engine.stats.bytes_transferred > _bytes(small) + 100_000  # the refused bytes moved


async def test_a_blob_streamed_for_a_failed_image_counts_once_for_one_that_landed() -> None:
    """A layer two images share counts when one of them lands, even if the other streamed it
    and then failed; the failed image's own layer never counts."""
    src, dst = MemStore("src.test"), MemStore("dst.test")
    shared = b"a layer both carry" * 8
    doomed, kept = image(shared, b"the doomed one's own"), image(shared, b"the kept one's own")
    src.add_image("acme/doomed", "1", doomed)
    src.add_image("acme/kept", "1", kept)
    own = next(d for d, data in doomed.blob_data.items() if data == b"the doomed one's own")
    dst.fail_write(own, times=10, error=LayoutWriteError("injected"))
    stores = {src.registry: src, dst.registry: dst}
    engine = CopyEngine(stores.__getitem__, Stats(), policy=FAST_POLICY, concurrency=1)
    results = await engine.run([_spec(src, "acme/doomed", dst), _spec(src, "acme/kept", dst)])
    assert [r.status for r in results] == ["failed", "copied"]
    assert engine.stats.bytes_copied == _bytes(kept)


async def test_a_run_whose_only_image_failed_copied_no_bytes() -> None:
    src, dst = MemStore("src.test"), MemStore("dst.test")
    img = image(b"one layer", b"another layer")
    src.add_image("acme/app", "1", img)
    last = next(d for d, data in img.blob_data.items() if data == b"another layer")
    dst.fail_write(last, times=10, error=LayoutWriteError("injected"))
    stores = {src.registry: src, dst.registry: dst}
    engine = CopyEngine(stores.__getitem__, Stats(), policy=FAST_POLICY)
    results = await engine.run([_spec(src, "acme/app", dst)])
    assert results[0].status == "failed"
    assert engine.stats.bytes_copied == 0
    assert engine.stats.bytes_transferred > 0


_LIMITED = (
    "import os, resource, sys\n"
    "resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.RLIM_INFINITY))\n"
    "os.execv(sys.executable, [sys.executable, '-m', 'github_org_backup', *sys.argv[2:]])\n"
)


@pytest.mark.integration
def test_a_real_file_size_limit_fails_the_image_cleanly_in_the_report(tmp_path: Path) -> None:
    """The CLI under RLIMIT_FSIZE (the kernel's EFBIG, no injection): the big image fails with
    the path, the small one lands, exit 1, no traceback, and the report's bytes_copied is the
    small image's alone."""
    import asyncio

    source, dest = tmp_path / "source", tmp_path / "dest"
    big, small = image(BIG), image(SMALL)

    async def seed() -> None:
        store = LayoutStore(Registry.layout_at(str(source)))
        await put_image(store, "acme/big", "1", big)
        await put_image(store, "acme/small", "1", small)

    asyncio.run(seed())
    specs = tmp_path / "specs.json"
    specs.write_text(
        "\n".join(
            json.dumps({"src": f"oci:{source}:acme/{n}:1", "dst": f"oci:{dest}:acme/{n}:1"})
            for n in ("big", "small")
        )
    )
    report = tmp_path / "report.json"
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    assert hard == resource.RLIM_INFINITY or hard > 200_000
    result = subprocess.run(
        [
            *(sys.executable, "-c", _LIMITED, "131072", "copy", "--specs", str(specs)),
            *("--report", str(report), "--log-format", "json"),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    document = json.loads(report.read_text())
    by_name = {i["destination"].rsplit("/", 1)[-1]: i for i in document["images"]}
    layer = next(d for d, data in big.blob_data.items() if data == BIG)
    assert by_name["big:1"]["status"] == "failed"
    assert by_name["big:1"]["error"] == (
        f"file too large writing {blob_path(dest, layer)}: "
        "raise the file size limit (ulimit -f) or choose another destination"
    )
    assert by_name["small:1"]["status"] == "copied"
    assert not blob_path(dest, layer).exists() and temporary_files(dest) == []
    summary = document["summary"]
    assert summary["bytes_copied"] == _bytes(small)
    assert summary["bytes_transferred"] >= _bytes(small) + 131072 // 2
