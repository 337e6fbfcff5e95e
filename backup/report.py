"""Run statistics, the periodic progress line, and the JSON report."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import structlog

from backup.files import atomic_write

Status = Literal["copied", "skipped", "failed"]


@dataclass
class Stats:
    """Counters updated by the engine as it works (single event loop, so no locking)."""

    images_total: int = 0
    images_copied: int = 0
    images_skipped: int = 0
    images_failed: int = 0
    blobs_copied: int = 0
    blobs_mounted: int = 0
    blobs_skipped: int = 0
    manifests_written: int = 0
    bytes_copied: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def images_done(self) -> int:
        return self.images_copied + self.images_skipped + self.images_failed

    def summary(self) -> dict[str, Any]:
        return {
            "images_copied": self.images_copied,
            "images_skipped": self.images_skipped,
            "images_failed": self.images_failed,
            "blobs_copied": self.blobs_copied,
            "blobs_mounted": self.blobs_mounted,
            "blobs_skipped": self.blobs_skipped,
            "manifests_written": self.manifests_written,
            "bytes_copied": self.bytes_copied,
            "duration_s": round(time.monotonic() - self.started, 3),
        }


@dataclass(frozen=True)
class ImageResult:
    source: str
    destination: str
    digest: str | None
    status: Status
    error: str | None = None
    duration_s: float = 0.0
    media_type: str | None = None  # of the manifest the destination tag points at
    size: int | None = None


@dataclass(frozen=True)
class PackageResult:
    """One package as discovery saw it: its kept tags, or why it could not be backed up."""

    package: str
    status: Literal["discovered", "failed", "skipped"]
    tags: int = 0  # tags the policy keeps
    error: str | None = None


async def report_progress(stats: Stats, interval_s: float = 5.0) -> None:
    """Log a progress line every ``interval_s`` until cancelled."""
    log = structlog.get_logger("backup.progress")
    last_bytes, last_time = 0, time.monotonic()
    while True:
        await asyncio.sleep(interval_s)
        now = time.monotonic()
        rate = (stats.bytes_copied - last_bytes) / max(now - last_time, 1e-9)
        last_bytes, last_time = stats.bytes_copied, now
        log.info(
            "progress",
            images_done=stats.images_done,
            images_total=stats.images_total,
            blobs_copied=stats.blobs_copied,
            blobs_mounted=stats.blobs_mounted,
            blobs_skipped=stats.blobs_skipped,
            bytes_copied=stats.bytes_copied,
            rate_mib_s=round(rate / 2**20, 1),
        )


def build_report(
    stats: Stats, results: list[ImageResult], extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "summary": stats.summary() | (extra or {}),
        "images": [asdict(r) for r in results],
    }


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Write to a regular file atomically (a reader never sees half a report), or to stdout."""
    if str(path) == "-":
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    if path.exists() and not path.is_file():
        with path.open("w") as handle:  # a FIFO or device: cannot be replaced atomically
            json.dump(report, handle, indent=2)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(report, indent=2).encode() + b"\n")
