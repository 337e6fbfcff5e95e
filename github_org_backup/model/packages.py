"""What discovery finds: an owner's container packages and their tags. Plain values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import structlog

from github_org_backup.errors import InvalidReference, OverLimit
from github_org_backup.model.reference import validate_digest, validate_tag

log = structlog.get_logger("github_org_backup.github.packages")


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


NAMED = 20  # out-of-shape versions and repeated tags named one by one; the rest are counted
# A real package has a few thousand tags at most; 100,000 hold about 20 MB. GitHub's pages
# are bounded, so this is what bounds a package whose versions each list thousands of tags.
MAX_TAGS = 100_000


class TagCollector:
    """A package's tags, collected page by page so that its raw versions are never all held.

    GitHub lists versions newest first, so a tag listed on two versions names the first. A
    version or tag out of the API's shape is skipped and named; the others are kept.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.tags: dict[str, str] = {}  # tag -> manifest digest
        self.untagged = 0
        self.skipped: list[str] = []
        self._position = 0
        self._skips = 0
        self._repeats = 0

    def add(self, versions: list[Any]) -> None:
        for version in versions:
            self._position += 1
            shaped = _version(version)
            if isinstance(shaped, str):
                self._skip("version_skipped", version, shaped)
                continue
            digest, found, wrong = shaped
            for problem in wrong:
                self._skip("tag_skipped", version, problem)
            if len(self.tags) + len(found) > MAX_TAGS:
                raise OverLimit(
                    f"package {self.name} lists more than {MAX_TAGS} tags: no real package "
                    "has that many; not backed up"
                )
            for tag in found:
                first = self.tags.setdefault(tag, digest)
                if first != digest:
                    self._repeated(tag, first, digest)
            # Children of tagged indexes, copied through their parent
            self.untagged += not found and not wrong

    def _skip(self, event: str, version: Any, problem: str) -> None:
        self._skips += 1
        if self._skips <= NAMED:
            where = _where(self._position, version)
            log.warning(event, package=self.name, version=where, error=problem)
            self.skipped.append(f"{where}: {problem}")

    def _repeated(self, tag: str, first: str, digest: str) -> None:
        self._repeats += 1
        if self._repeats <= NAMED:
            log.warning(
                "tag_listed_twice",
                package=self.name,
                tag=tag,
                digest=first,
                ignored_digest=digest,
                hint="GitHub lists newest first: the first listing is backed up",
            )

    def package(self) -> Package:
        skipped = list(self.skipped)
        if self._skips > NAMED:
            skipped.append(f"and {self._skips - NAMED} more versions or tags out of shape")
            log.warning("versions_skipped", package=self.name, count=self._skips)
        if self._repeats > NAMED:
            log.warning("tags_listed_twice", package=self.name, count=self._repeats)
        return Package(self.name, self.tags, self.untagged, tuple(skipped))


def tagged_versions(name: str, versions: list[Any]) -> Package:
    """The tags of ``versions``, as one page of a ``TagCollector``."""
    collector = TagCollector(name)
    collector.add(versions)
    return collector.package()


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
