"""What became of each input of a run: an image copied (or not), a package discovered (or not).

Results keep the typed references the run worked on; they turn into the report's JSON only
when the report is written (``to_json``), under the keys users script against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from github_org_backup.model.oci import Descriptor
from github_org_backup.model.reference import Reference

Status = Literal["copied", "skipped", "failed"]


@dataclass(frozen=True)
class ImageResult:
    """One copy spec's outcome; ``media_type`` and ``size`` are the manifest's the
    destination's tag points at, when the copy holds its whole descriptor."""

    source: Reference
    destination: Reference
    digest: str | None
    status: Status
    error: str | None = None
    duration_s: float = 0.0
    media_type: str | None = None
    size: int | None = None

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    def written(self) -> Descriptor | None:
        """The whole descriptor of what the destination now holds, if the result has it."""
        if self.failed or not self.digest or not self.media_type:
            return None
        if self.size is None or self.size < 0:
            return None
        return Descriptor(self.media_type, self.digest, self.size)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": str(self.source),
            "destination": str(self.destination),
            "digest": self.digest,
            "status": self.status,
            "error": self.error,
            "duration_s": self.duration_s,
            "media_type": self.media_type,
            "size": self.size,
        }


@dataclass(frozen=True)
class PackageResult:
    """One package as discovery saw it: its kept tags, or why it could not be backed up."""

    package: str
    status: Literal["discovered", "failed", "skipped"]
    tags: int = 0  # tags the policy keeps
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "package": self.package,
            "status": self.status,
            "tags": self.tags,
            "error": self.error,
        }


@dataclass(frozen=True)
class MovedTag:
    """A tag the source pointed at another digest since the previous snapshot."""

    tag: str  # repository:tag below the backup's prefix
    was: str
    now: str

    def to_json(self) -> dict[str, str]:
        return {"tag": self.tag, "was": self.was, "now": self.now}
