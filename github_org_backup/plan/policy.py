"""Which tags of a package to keep: a pure function over tag names.

Semver tags (``v?MAJOR.MINOR.PATCH[-suffix]``) are grouped by (major, minor, variant) and only
the highest release of each group is kept; both spellings of that release (``v1.2.3`` and
``1.2.3``) are kept. Other tags (``latest``, ``main``, ``1.2``) are kept. Per-commit and per-PR
builds are dropped by default.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass

import semver

# Per-commit (sha-<hex>) and per-PR (pr-<n>) builds, as docker/metadata-action names them.
DEFAULT_EXCLUSIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"sha-[0-9a-f]{7,64}", re.ASCII), "per-commit build"),
    (re.compile(r"pr-[0-9]+", re.ASCII), "per-PR build"),
)
_SEMVER_SHAPE = re.compile(r"v?[0-9]+\.[0-9]+\.[0-9]+(?:-[0-9A-Za-z.-]+)?", re.ASCII)
# A prerelease suffix starts with one of these words and its numbers: rc1, rc.2, beta-3.
_PRERELEASE = re.compile(
    r"(?:rc|alpha|beta|pre|preview|dev|snapshot|nightly|canary|a|b)(?:[.-]?[0-9]+)*(?=$|[.-])",
    re.ASCII | re.IGNORECASE,
)
_REVISION = re.compile(r"[0-9]+", re.ASCII)


@dataclass(frozen=True)
class TagPolicy:
    all_patches: bool = False
    keep_prereleases: bool = False
    include: tuple[re.Pattern[str], ...] = ()
    exclude: tuple[re.Pattern[str], ...] = ()

    @classmethod
    def from_patterns(
        cls,
        include: Iterable[str] = (),
        exclude: Iterable[str] = (),
        *,
        all_patches: bool = False,
        keep_prereleases: bool = False,
    ) -> TagPolicy:
        """Compile user regexes (full-match against the tag); a bad one raises ValueError."""

        def compile_all(patterns: Iterable[str], flag: str) -> tuple[re.Pattern[str], ...]:
            compiled = []
            for pattern in patterns:
                try:
                    compiled.append(re.compile(pattern))
                except re.error as exc:
                    raise ValueError(f"{flag} {pattern!r} is not a valid regex: {exc}") from None
            return tuple(compiled)

        return cls(
            all_patches,
            keep_prereleases,
            compile_all(include, "--include-tag"),
            compile_all(exclude, "--exclude-tag"),
        )

    def named_by_include(self, tag: str) -> bool:
        """Whether an ``--include-tag`` pattern matches ``tag`` in full."""
        return any(p.fullmatch(tag) for p in self.include)


@dataclass(frozen=True)
class Decision:
    tag: str
    keep: bool
    reason: str


@dataclass(frozen=True)
class _Release:
    """A parsed semver tag: ``rank`` orders releases, ``group`` says which compete."""

    version: semver.Version
    revision: int
    variant: str
    prerelease: bool

    @property
    def group(self) -> tuple[int, int, str]:
        return (self.version.major, self.version.minor, self.variant)

    @property
    def rank(self) -> tuple[semver.Version, int]:
        return (self.version, self.revision)


def parse_release(tag: str) -> _Release | None:
    """Parse a semver tag strictly; None for anything else (``1.2``, ``latest``, ``01.2.3``)."""
    if not _SEMVER_SHAPE.fullmatch(tag):
        return None
    try:
        version = semver.Version.parse(tag.removeprefix("v"))
    except ValueError:
        return None
    suffix = version.prerelease or ""
    if not suffix:
        return _Release(version, 0, "", False)
    release = version.replace(prerelease=None)
    if _REVISION.fullmatch(suffix):  # 1.2.3-4: a rebuild of 1.2.3, ranked above it
        return _Release(release, int(suffix), "", False)
    if prerelease := _PRERELEASE.match(suffix):
        return _Release(version, 0, suffix[prerelease.end() :].lstrip(".-"), True)
    return _Release(release, 0, suffix, False)


def _matches(patterns: Iterable[re.Pattern[str]], tag: str) -> bool:
    return any(p.fullmatch(tag) for p in patterns)


def select_tags(tags: Iterable[str], policy: TagPolicy = TagPolicy()) -> list[Decision]:
    """Decide every tag, in sorted order. ``--include-tag`` keeps a tag whatever else applies."""
    decisions: dict[str, Decision] = {}
    candidates: dict[str, _Release] = {}
    for tag in sorted(set(tags)):
        if _matches(policy.include, tag):
            decisions[tag] = Decision(tag, True, "--include-tag")
        elif _matches(policy.exclude, tag):
            decisions[tag] = Decision(tag, False, "--exclude-tag")
        elif reason := next((r for p, r in DEFAULT_EXCLUSIONS if p.fullmatch(tag)), None):
            decisions[tag] = Decision(tag, False, reason)
        elif (release := parse_release(tag)) is None:
            decisions[tag] = Decision(tag, True, "not a semver release")
        elif release.prerelease and not policy.keep_prereleases:
            decisions[tag] = Decision(tag, False, "prerelease")
        elif policy.all_patches:
            decisions[tag] = Decision(tag, True, "--all-patches")
        else:
            candidates[tag] = release
    best: dict[tuple[int, int, str], _Release] = {}
    for release in candidates.values():
        current = best.get(release.group)
        if current is None or release.rank > current.rank:
            best[release.group] = release
    for tag, release in candidates.items():
        top = best[release.group]
        if release.rank == top.rank:
            decisions[tag] = Decision(tag, True, "latest patch")
        else:
            winner = min(t for t, r in candidates.items() if r.rank == top.rank)
            decisions[tag] = Decision(tag, False, f"superseded by {winner}")
    return [decisions[t] for t in sorted(decisions)]


@dataclass(frozen=True)
class PackageFilter:
    """``--include-package`` / ``--exclude-package`` globs over OWNER/NAME names, the same in
    every command: a glob matches the whole name, or the name without its owner, so ``team/*``
    and ``acme/team/*`` select the same packages of acme. GitHub owner names ignore case, so a
    glob's owner does too (``--org Acme`` and ``acme/team/*``)."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def allows(self, name: str) -> bool:
        if self.include and not any(_names(name, p) for p in self.include):
            return False
        return not any(_names(name, p) for p in self.exclude)


def _names(name: str, pattern: str) -> bool:
    """Whether a package glob names OWNER/NAME ``name``, with its owner or without."""
    owner, _, short = name.partition("/")
    head, sep, rest = pattern.partition("/")
    if sep and rest and short and head.casefold() == owner.casefold():
        return fnmatch.fnmatchcase(short, rest)
    return fnmatch.fnmatchcase(name, pattern) or bool(short and fnmatch.fnmatchcase(short, pattern))
