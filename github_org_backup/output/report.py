"""Run statistics, the periodic progress line, and the JSON report."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import structlog

from github_org_backup.base.files import atomic_write
from github_org_backup.errors import OutputError, UsageError

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
    log = structlog.get_logger("github_org_backup.output.progress")
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


def check_output_path(path: Path, flag: str = "--report", *, makes_parents: bool = True) -> None:
    """Refuse, before any work, an output FILE (``--report``, ``--metrics-file``) that the end
    of the run could not write; ``makes_parents`` when the writer creates missing directories."""
    if str(path) == "-":
        return
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a directory: name a file in it")
    if path.exists() and not path.is_file():
        return  # a FIFO or device: opening it now would wait for its reader
    existing = next(p for p in (path.parent, *path.parent.parents) if p.exists())
    if not existing.is_dir():
        raise UsageError(f"{flag} {path}: {existing} is a file, not a directory")
    if existing != path.parent and not makes_parents:
        raise UsageError(f"{flag} {path}: directory {path.parent} does not exist")
    if existing != path.parent:  # the end of the run creates the missing directories
        if not os.access(existing, os.W_OK | os.X_OK):
            raise UsageError(f"{flag} {path}: cannot create directories in {existing}")
        return
    try:  # a temporary file beside it, as the atomic write at the end makes
        with tempfile.TemporaryFile(dir=path.parent, prefix=f".{path.name}.probe-"):
            pass
    except OSError as exc:
        raise UsageError(
            f"{flag} {path}: cannot write in {path.parent} ({exc.strerror}): "
            "name a file in a writable directory"
        ) from None


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Write to a regular file atomically (a reader never sees half a report), or to stdout.

    A file that cannot be written (checked at the start, so the disk filled or the directory
    vanished since) is an OutputError naming the path; a closed stdout is the caller's to end.
    """
    if str(path) == "-":
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    try:
        if path.exists() and not path.is_file():
            with path.open("w") as handle:  # a FIFO or device: cannot be replaced atomically
                json.dump(report, handle, indent=2)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(report, indent=2).encode() + b"\n")
    except OSError as exc:
        raise OutputError(
            f"the run finished but its report could not be written to {path}: "
            f"{exc.strerror or exc}; the log above has the run's events"
        ) from None
