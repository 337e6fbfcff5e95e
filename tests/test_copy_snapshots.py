"""`copy --snapshot-prefix` rerun over unchanged tags adds no identical snapshot; a changed tag
adds one, as before."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from github_org_backup.history.model import TaggedImage
from github_org_backup.history.record import Retention, record_run
from github_org_backup.history.store import Snapshots
from github_org_backup.model.reference import Repository
from github_org_backup.model.reserved import HISTORY_TAG
from tests.conftest import CliRunner, LiveRegistry
from tests.harness.memstore import Image, MemStore, image
from tests.test_history import SmallOrg


@pytest.mark.integration
def test_an_unchanged_copy_rerun_adds_no_identical_snapshot(
    cli: CliRunner,
    source: LiveRegistry,
    destination: LiveRegistry,
    namespace: str,
    tmp_path: Path,
) -> None:
    small = SmallOrg(source, f"org{namespace}")
    prefix = f"http://{destination.host}/{namespace}-copy"
    src = f"http://{source.host}/{small.name}"
    specs = tmp_path / "specs.json"
    specs.write_text(
        "\n".join(
            json.dumps({"src": f"{src}/{tag}", "dst": f"{prefix}/{tag}"})
            for tag in ("app:latest", "web:2.1.0")
        )
    )

    def copy(name: str) -> tuple[dict[str, Any], str]:
        report = tmp_path / f"{name}.json"
        result = cli(
            *("copy", "--specs", str(specs), "--snapshot-prefix", prefix),
            *("--report", str(report), "--log-format", "json"),
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(report.read_text())["summary"], result.stderr

    def snapshots() -> list[dict[str, Any]]:
        result = cli("snapshots", "--dest", prefix, "--json")
        assert result.returncode == 0, result.stderr[-3000:]
        return list(json.loads(result.stdout))

    first, _ = copy("first")
    assert [s["id"] for s in snapshots()] == [first["snapshot"]]

    again, log = copy("again")
    assert again["images_skipped"] == 2 and again["snapshot"] == first["snapshot"]
    unchanged = [json.loads(line) for line in log.splitlines() if "snapshot_unchanged" in line]
    assert [e["snapshot"] for e in unchanged] == [first["snapshot"]]
    assert [s["id"] for s in snapshots()] == [first["snapshot"]]
    assert again["histories_written"] == 0 and again["tags_moved"] == 0

    small.push("app", "latest")  # the source moves a tag: the next run is a new state
    moved, log = copy("moved")
    assert moved["tags_moved"] == 1 and moved["snapshot"] != first["snapshot"]
    assert "snapshot_unchanged" not in log
    assert [s["id"] for s in snapshots()] == [first["snapshot"], moved["snapshot"]]

    still, _ = copy("still")
    assert still["snapshot"] == moved["snapshot"]
    assert [s["id"] for s in snapshots()] == [first["snapshot"], moved["snapshot"]]


def _tagged(tag: str, img: Image) -> TaggedImage:
    return TaggedImage("acme/app", tag, img.digest, img.manifest.media_type, img.manifest.size)


async def test_an_unchanged_record_still_applies_the_retention_and_repairs() -> None:
    """In-process, over a memory store: with skip_unchanged, the same tags again write no
    snapshot, yet --keep-last forgets the older ones and a damaged history tag is repaired."""
    store = MemStore("backup.test")
    prefix = Repository(store.registry, "ghcr")
    one, two = image(b"one"), image(b"two")
    store.add_image("ghcr/acme/app", "1", one)
    store.add_image("ghcr/acme/app", "2", two)
    snapshots = Snapshots(store, prefix)
    first = await record_run(snapshots, None, "s", [_tagged("1", one)], Retention())
    await asyncio.sleep(0.002)  # snapshot ids have millisecond resolution
    state = [_tagged("1", one), _tagged("2", two)]
    second = await record_run(snapshots, first.snapshot, "s", state, Retention())
    store.tags["ghcr/acme/app"].pop(HISTORY_TAG)  # damage to repair
    await asyncio.sleep(0.002)
    with capture_logs() as logs:
        again = await record_run(
            snapshots, second.snapshot, "s", state, Retention(keep_last=1), skip_unchanged=True
        )
    assert again.snapshot == second.snapshot and again.moved == []
    assert await snapshots.ids() == [second.snapshot.id]  # the first forgotten, none added
    assert again.forgotten == [first.snapshot.id]
    assert (again.histories_written, again.histories_repaired) == (0, 1)
    assert store.tag_digest("ghcr/acme/app", HISTORY_TAG) is not None
    assert [e["snapshot"] for e in logs if e["event"] == "snapshot_unchanged"] == [
        second.snapshot.id
    ]
    changed = await record_run(
        snapshots, second.snapshot, "s", state[:1], Retention(), skip_unchanged=True
    )
    assert changed.snapshot.id != second.snapshot.id
    assert await snapshots.ids() == [second.snapshot.id, changed.snapshot.id]
