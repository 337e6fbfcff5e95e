"""Several writers on one OCI layout: shards of an Indexed Job on a shared volume, or a manual
copy beside the CronJob. Each process reads index.json once; a commit must not write back a
stale copy over another writer's refs."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from github_org_backup.model.reference import Registry
from github_org_backup.stores.layout import LayoutStore
from tests.harness.memstore import image
from tests.test_layout_inprocess import put_image, ref_names

ROOT = Path(__file__).resolve().parent.parent


def layout_at(root: Path) -> LayoutStore:
    return LayoutStore(Registry.layout_at(str(root)))


async def test_two_stores_on_one_layout_keep_each_others_refs(tmp_path: Path) -> None:
    """Both stores read index.json before either writes; every tag and delete survives."""
    first, second = layout_at(tmp_path), layout_at(tmp_path)
    await put_image(first, "acme/a", "0", image(b"seed"))
    assert await second.list_tags("acme/a") == ["0"]  # second has read the index now
    await asyncio.gather(
        *(put_image(first, "acme/a", str(n), image(b"a%d" % n)) for n in range(1, 20)),
        *(put_image(second, "acme/b", str(n), image(b"b%d" % n)) for n in range(20)),
    )
    await second.delete_tag("acme/a", "0")
    expected = {f"acme/a:{n}" for n in range(1, 20)} | {f"acme/b:{n}" for n in range(20)}
    assert sorted(ref_names(tmp_path)) == sorted(expected)
    assert len(await layout_at(tmp_path).list_tags("acme/b")) == 20


_WRITER = """
import asyncio, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from github_org_backup.stores.layout import LayoutStore
from github_org_backup.model.reference import Registry
from tests.harness.memstore import image
from tests.test_layout_inprocess import put_image

async def main(name):
    store = LayoutStore(Registry.layout_at({layout!r}))
    await store.list_tags(name)  # read index.json once, at the start, as a run does
    for n in range(40):
        await put_image(store, name, str(n), image(f"{{name}}{{n}}".encode()))

asyncio.run(main(sys.argv[1]))
"""


def test_concurrent_processes_writing_one_layout_lose_nothing(tmp_path: Path) -> None:
    """Three processes tag 40 images each into one layout at the same time."""
    layout = tmp_path / "layout"
    script = _WRITER.format(root=str(ROOT), layout=str(layout))
    writers = [
        subprocess.Popen([sys.executable, "-c", script, name], cwd=ROOT)
        for name in ("acme/x", "acme/y", "acme/z")
    ]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0]
    refs = ref_names(layout)
    assert len(refs) == len(set(refs)) == 120
    index = json.loads((layout / "index.json").read_bytes())
    assert all((layout / "blobs" / "sha256" / e["digest"][7:]).exists() for e in index["manifests"])
