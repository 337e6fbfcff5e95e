"""What discovery finds: an owner's container packages and their tags. Plain values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import structlog

from backup.errors import InvalidReference
from backup.reference import validate_digest, validate_tag

log = structlog.get_logger("backup.github")


@dataclass(frozen=True)
class Owner:
    kind: Literal["orgs", "users"]
    name: str

    def packages_path(self) -> str:
        return f"/{self.kind}/{quote(self.name, safe='')}/packages"

    def versions_path(self, package: str) -> str:
        # Nested package names (team/app) must be sent as team%2Fapp.
        return f"{self.packages_path()}/container/{quote(package, safe='')}/versions"

    def __str__(self) -> str:
        return f"{'organisation' if self.kind == 'orgs' else 'user'} {self.name!r}"


@dataclass(frozen=True)
class Package:
    name: str
    tags: dict[str, str]  # tag -> manifest digest
    untagged: int
    skipped: tuple[str, ...] = ()  # versions or tags GitHub listed out of its API's shape


@dataclass(frozen=True)
class FailedPackage:
    """A package GitHub listed but whose versions could not be read: only it fails."""

    name: str
    error: str
    status: int | None = None  # the HTTP status GitHub answered, None for no answer


def tagged_versions(name: str, versions: list[Any]) -> Package:
    """The package's tags (tag -> manifest digest) and how many versions are untagged.

    GitHub lists versions newest first, so a tag listed on two versions names the first. A
    version out of the API's shape is skipped and named; the others are kept.
    """
    tags: dict[str, str] = {}
    untagged = 0
    skipped: list[str] = []
    for position, version in enumerate(versions, start=1):
        shaped = _version(version)
        if isinstance(shaped, str):
            where = _where(position, version)
            log.warning("version_skipped", package=name, version=where, error=shaped)
            skipped.append(f"{where}: {shaped}")
            continue
        digest, found, wrong = shaped
        for problem in wrong:
            where = _where(position, version)
            log.warning("tag_skipped", package=name, version=where, error=problem)
            skipped.append(f"{where}: {problem}")
        for tag in found:
            first = tags.setdefault(tag, digest)
            if first != digest:
                log.warning(
                    "tag_listed_twice",
                    package=name,
                    tag=tag,
                    digest=first,
                    ignored_digest=digest,
                    hint="GitHub lists newest first: the first listing is backed up",
                )
        # Children of tagged indexes, copied through their parent
        untagged += not found and not wrong
    return Package(name, tags, untagged, tuple(skipped))


def _where(position: int, version: Any) -> str:
    ident = version.get("id") if isinstance(version, dict) else None
    number = ident if isinstance(ident, int) and not isinstance(ident, bool) else None
    return f"version {position}" + (f" (id {number})" if number is not None else "")


def _field(parent: Any, key: str, default: Any) -> Any:
    """An optional field: absent or null is ``default``; None if the parent is no object."""
    if not isinstance(parent, dict):
        return None
    value = parent.get(key)
    return default if value is None else value


def _version(version: Any) -> tuple[str, list[str], list[str]] | str:
    """A version's manifest digest, its valid tags and what was wrong with the others; or why
    the version as a whole is out of the API's shape."""
    if not isinstance(version, dict):
        return f"a version of type {type(version).__name__}, not an object"
    digest = version.get("name")
    if not isinstance(digest, str):
        return "its name is not text"
    try:
        validate_digest(digest)
    except InvalidReference:
        return "its name is not a manifest digest"
    metadata = _field(version, "metadata", {})  # optional in GitHub's schema
    container = _field(metadata, "container", {})
    found = _field(container, "tags", [])
    if not isinstance(found, list):
        return "its metadata.container.tags is not a list"
    tags: list[str] = []
    wrong: list[str] = []
    for tag in found:
        if not isinstance(tag, str):
            wrong.append(f"a tag of type {type(tag).__name__}")
            continue
        try:
            tags.append(validate_tag(tag))
        except InvalidReference:
            wrong.append(f"tag {tag[:64]!r} is not a valid tag")
    return digest, tags, wrong
