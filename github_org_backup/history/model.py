"""Snapshot values: which tag pointed at which digest after a run, the snapshot ids (UTC
timestamps, sortable as text), and the times and durations the command line gives."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from github_org_backup import __version__
from github_org_backup.base import jsonio
from github_org_backup.errors import InvalidManifest, UsageError
from github_org_backup.model.oci import Descriptor
from github_org_backup.model.reference import validate_digest, validate_repository, validate_tag
from github_org_backup.model.results import MovedTag

_ID_FORMAT = "%Y%m%dT%H%M%S"
_ID = re.compile(r"[0-9]{8}T[0-9]{6}\.[0-9]{3}Z", re.ASCII)


def is_snapshot_id(text: str) -> bool:
    return bool(_ID.fullmatch(text))


def snapshot_id(moment: datetime) -> str:
    """``20261129T171538.123Z``: UTC, fixed width, so text order is time order."""
    moment = moment.astimezone(UTC)
    return f"{moment.strftime(_ID_FORMAT)}.{moment.microsecond // 1000:03d}Z"


def id_time(identifier: str) -> datetime:
    if not _ID.fullmatch(identifier):
        raise UsageError(f"{identifier!r} is not a snapshot id such as 20261129T171538.123Z")
    stamp, _, millis = identifier.removesuffix("Z").partition(".")
    moment = datetime.strptime(stamp, _ID_FORMAT).replace(tzinfo=UTC)
    return moment + timedelta(milliseconds=int(millis))


def parse_timestamp(text: str) -> datetime:
    """An ``--as-of`` time: ISO 8601 (``2026-11-29``, ``2026-11-29T03:00:00Z``) or a snapshot id.

    A time without a zone is UTC.
    """
    text = text.strip()
    if _ID.fullmatch(text):
        return id_time(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{text!r} is not a time such as 2026-11-29, 2026-11-29T03:00:00Z or a snapshot id"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True, order=True)
class TaggedImage:
    """One tag of the backup: its repository below the prefix, and what it pointed at."""

    repository: str
    tag: str
    digest: str
    media_type: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "tag": self.tag,
            "digest": self.digest,
            "mediaType": self.media_type,
            "size": self.size,
        }

    @classmethod
    def from_json(cls, obj: Any) -> TaggedImage:
        try:
            image = cls(
                validate_repository(str(obj["repository"])),
                validate_tag(str(obj["tag"])),
                validate_digest(str(obj["digest"])),
                str(obj["mediaType"]),
                int(obj["size"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidManifest(f"a snapshot entry is malformed: {exc}") from None
        return image

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, self.size)


@dataclass(frozen=True)
class Snapshot:
    id: str
    source: str
    tool_version: str
    images: tuple[TaggedImage, ...]

    @property
    def created(self) -> datetime:
        return id_time(self.id)

    @property
    def digests(self) -> frozenset[str]:
        return frozenset(image.digest for image in self.images)

    def tags(self) -> dict[tuple[str, str], str]:
        """(repository, tag) -> digest."""
        return {(i.repository, i.tag): i.digest for i in self.images}

    def to_bytes(self) -> bytes:
        document = {
            "id": self.id,
            "created": self.created.isoformat().replace("+00:00", "Z"),
            "source": self.source,
            "toolVersion": self.tool_version,
            "images": [image.to_json() for image in sorted(self.images)],
        }
        return json.dumps(document, indent=1, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Snapshot:
        try:
            document = jsonio.loads(data)
            snapshot = cls(
                str(document["id"]),
                str(document["source"]),
                str(document["toolVersion"]),
                tuple(TaggedImage.from_json(obj) for obj in document["images"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidManifest(f"a snapshot is not readable: {exc}") from None
        id_time(snapshot.id)
        return snapshot

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "time": self.created.isoformat().replace("+00:00", "Z"),
            "source": self.source,
            "tags": len(self.images),
            "digests": len(self.digests),
            "tool_version": self.tool_version,
        }


def new_snapshot(
    source: str,
    images: Iterable[TaggedImage],
    moment: datetime | None = None,
) -> Snapshot:
    moment = moment or datetime.now(UTC)
    unique = {(i.repository, i.tag): i for i in images}
    return Snapshot(snapshot_id(moment), source, __version__, tuple(sorted(unique.values())))


def moved_tags(before: Snapshot | None, after: Snapshot) -> list[MovedTag]:
    """Tags whose digest changed since ``before``: what the source overwrote."""
    if before is None:
        return []
    old = before.tags()
    moved = []
    for (repository, tag), digest in sorted(after.tags().items()):
        was = old.get((repository, tag))
        if was is not None and was != digest:
            moved.append(MovedTag(f"{repository}:{tag}", was, digest))
    return moved


_DURATION = re.compile(r"([0-9]+)([hdwy])", re.ASCII)
_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def parse_duration(text: str) -> timedelta:
    """``90d``, ``12h``, ``2w``, ``1y`` or a sum such as ``1y30d``."""
    text = text.strip().lower()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise UsageError(f"{text!r} is not a duration such as 90d, 12h, 2w or 1y")
    total = timedelta()
    for number, unit in parts:
        total += timedelta(days=365 * int(number)) if unit == "y" else _UNITS[unit] * int(number)
    return total
