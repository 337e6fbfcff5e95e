"""A run's statistics and its report: typed while the run works, JSON only when written.

The JSON keys, their order and their values are what users script against; ``RunReport``
turns into exactly them in ``to_json``, and nothing else reads the report through strings.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import structlog

from github_org_backup.base.files import atomic_write
from github_org_backup.errors import OutputError, UsageError
from github_org_backup.model.results import ImageResult, MovedTag, PackageResult, Status

__all__ = [
    "Counts",
    "Discovery",
    "HistoryOutcome",
    "ImageResult",
    "MovedTag",
    "PackageResult",
    "Prune",
    "Reportable",
    "RunReport",
    "Stats",
    "Status",
    "check_output_path",
    "report_progress",
    "write_report",
]


@dataclass
class Stats:
    """Counters updated by the engine as it works (single event loop, so no locking).

    ``bytes_transferred`` grows with every blob byte read from a source, retries and images
    that later fail included (the progress rate); ``bytes_copied`` only by the blobs of the
    images that completed, once each, when the image completes.
    """

    images_total: int = 0
    images_copied: int = 0
    images_skipped: int = 0
    images_failed: int = 0
    blobs_copied: int = 0
    blobs_mounted: int = 0
    blobs_skipped: int = 0
    manifests_written: int = 0
    bytes_copied: int = 0
    bytes_transferred: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def images_done(self) -> int:
        return self.images_copied + self.images_skipped + self.images_failed

    def freeze(self) -> Counts:
        """The counters as they stand, with the time since the run started."""
        return Counts(
            self.images_copied,
            self.images_skipped,
            self.images_failed,
            self.blobs_copied,
            self.blobs_mounted,
            self.blobs_skipped,
            self.manifests_written,
            self.bytes_copied,
            round(time.monotonic() - self.started, 3),
            self.bytes_transferred,
        )


@dataclass(frozen=True)
class Counts:
    """The engine's counters at the end of its run."""

    images_copied: int = 0
    images_skipped: int = 0
    images_failed: int = 0
    blobs_copied: int = 0
    blobs_mounted: int = 0
    blobs_skipped: int = 0
    manifests_written: int = 0
    bytes_copied: int = 0  # the blobs of the images that completed
    duration_s: float = 0.0
    bytes_transferred: int = 0  # every blob byte read, retries and failed images included

    def to_json(self) -> dict[str, Any]:
        return {
            "images_copied": self.images_copied,
            "images_skipped": self.images_skipped,
            "images_failed": self.images_failed,
            "blobs_copied": self.blobs_copied,
            "blobs_mounted": self.blobs_mounted,
            "blobs_skipped": self.blobs_skipped,
            "manifests_written": self.manifests_written,
            "bytes_copied": self.bytes_copied,
            "bytes_transferred": self.bytes_transferred,
            "duration_s": self.duration_s,
        }


@dataclass(frozen=True)
class Discovery:
    """What listing an owner's packages on GitHub did, and what its cache saved."""

    packages: int
    packages_failed: int
    github_requests: int
    github_rate_limit_remaining: int | None
    truncated: bool
    error: str | None
    cache: str  # the discovery cache: absent, used, ...
    not_modified: int
    packages_from_cache: int
    packages_revalidated: int
    packages_read: int

    def to_json(self) -> dict[str, Any]:
        return {
            "packages": self.packages,
            "packages_failed": self.packages_failed,
            "github_requests": self.github_requests,
            "github_rate_limit_remaining": self.github_rate_limit_remaining,
            "discovery_truncated": self.truncated,
            "discovery_error": self.error,
            "discovery_cache": self.cache,
            "github_requests_not_modified": self.not_modified,
            "packages_from_cache": self.packages_from_cache,
            "packages_revalidated": self.packages_revalidated,
            "packages_read": self.packages_read,
        }


@dataclass(frozen=True)
class HistoryOutcome:
    """What recording the run's snapshot did to the backup's history."""

    snapshot: str
    moved: tuple[MovedTag, ...] = ()
    snapshots_forgotten: int = 0
    histories_written: int = 0
    histories_repaired: int = 0
    history_entries_lost: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "snapshot": self.snapshot,
            "tags_moved": len(self.moved),
            "snapshots_forgotten": self.snapshots_forgotten,
            "histories_written": self.histories_written,
            "histories_repaired": self.histories_repaired,
            "history_entries_lost": self.history_entries_lost,
        }


@dataclass(frozen=True)
class Prune:
    """What ``--prune`` deleted; ``pruned`` is None when it refused to decide."""

    pruned: tuple[str, ...] | None


@dataclass(frozen=True)
class RunReport:
    """Everything a run that copies images reports, typed; ``to_json`` is the report file."""

    counts: Counts
    images: tuple[ImageResult, ...] = ()
    requests: Mapping[str, int] = field(default_factory=dict)
    interrupted: bool = False
    restored: Mapping[str, str] = field(default_factory=dict)  # series -> snapshot id
    discovery: Discovery | None = None
    packages: tuple[PackageResult, ...] | None = None
    history: HistoryOutcome | None = None
    prune: Prune | None = None
    history_error: str | None = None
    no_access: int = 0  # images failed on credentials or an unreachable registry (not written)

    @property
    def any_failed(self) -> bool:
        return self.counts.images_failed > 0

    @property
    def doomed(self) -> bool:
        """Every image failed, each for want of access: the run as a whole could not go on."""
        counts = self.counts
        done = counts.images_copied + counts.images_skipped
        return done == 0 and counts.images_failed > 0 and self.no_access == counts.images_failed

    def with_refused(self, refused: tuple[ImageResult, ...]) -> RunReport:
        """The report with images that failed before the engine saw them, after its own."""
        counts = replace(self.counts, images_failed=self.counts.images_failed + len(refused))
        return replace(self, counts=counts, images=(*self.images, *refused))

    def with_history(self, history: HistoryOutcome) -> RunReport:
        return replace(self, history=history)

    def with_prune(self, pruned: tuple[str, ...] | None) -> RunReport:
        return replace(self, prune=Prune(pruned))

    def failed_history(self, error: str) -> RunReport:
        return replace(self, history_error=error)

    def summary(self) -> dict[str, Any]:
        """The report's ``summary``, which the run's last log event (run_finished) repeats."""
        found = self.counts.to_json()
        found["requests"] = dict(self.requests)
        found["interrupted"] = self.interrupted
        if list(self.restored) == [""]:
            found["snapshot"] = self.restored[""]
        elif self.restored:
            found["snapshots"] = dict(self.restored)
        if self.discovery is not None:
            found |= self.discovery.to_json()
        if self.history is not None:
            found |= self.history.to_json()
        if self.prune is not None:
            pruned = self.prune.pruned
            found["tags_pruned"] = None if pruned is None else len(pruned)
        if self.history_error is not None:
            found["history_error"] = self.history_error
        return found

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "summary": self.summary(),
            "images": [image.to_json() for image in self.images],
        }
        if self.packages is not None:
            document["packages"] = [package.to_json() for package in self.packages]
        if self.history is not None:
            document["moved_tags"] = [moved.to_json() for moved in self.history.moved]
        if self.prune is not None and self.prune.pruned is not None:
            document["pruned"] = list(self.prune.pruned)
        return document


class Reportable(Protocol):
    """A report that knows its JSON (a RunReport, or another job's)."""

    def to_json(self) -> dict[str, Any]: ...


async def report_progress(stats: Stats, interval_s: float = 5.0) -> None:
    """Log a progress line every ``interval_s`` until cancelled; ``images_done`` counts the
    failed ones too, which ``images_failed`` says apart."""
    log = structlog.get_logger("github_org_backup.output.progress")
    last_bytes, last_time = 0, time.monotonic()
    while True:
        await asyncio.sleep(interval_s)
        now = time.monotonic()
        rate = (stats.bytes_transferred - last_bytes) / max(now - last_time, 1e-9)
        last_bytes, last_time = stats.bytes_transferred, now
        log.info(
            "progress",
            images_done=stats.images_done,
            images_total=stats.images_total,
            images_failed=stats.images_failed,
            blobs_copied=stats.blobs_copied,
            blobs_mounted=stats.blobs_mounted,
            blobs_skipped=stats.blobs_skipped,
            bytes_copied=stats.bytes_copied,
            bytes_transferred=stats.bytes_transferred,
            rate_mib_s=round(rate / 2**20, 1),
        )


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


def write_report(path: Path, report: Reportable | Mapping[str, Any]) -> None:
    """Write to a regular file atomically (a reader never sees half a report), or to stdout.

    A file that cannot be written (checked at the start, so the disk filled or the directory
    vanished since) is an OutputError naming the path; a closed stdout is the caller's to end.
    """
    if not isinstance(report, Mapping):
        report = report.to_json()
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
