"""--include-package and --exclude-package: globs that name a package with or without its
owner, in every command (``team/*`` and ``acme/team/*`` select the same packages of acme)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass

from github_org_backup.plan.policy import PackageFilter


def package_globs(globs: Iterable[str], owner: str) -> tuple[str, ...]:
    """registry's globs over package names, which carry no owner: a glob that starts with the
    owner also matches without it."""
    found: list[str] = []
    for glob in globs:
        found.append(glob)
        head, sep, rest = glob.partition("/")
        if sep and rest and head.lower() == owner.lower():
            found.append(rest)
    return tuple(dict.fromkeys(found))


@dataclass(frozen=True)
class OwnedNames(PackageFilter):
    """Globs over OWNER/NAME names (a backup's repositories, git mirrors): a glob matches the
    whole name, or the name without its owner."""

    def allows(self, name: str) -> bool:
        short = name.partition("/")[2]

        def hit(patterns: tuple[str, ...]) -> bool:
            return any(
                fnmatch.fnmatchcase(name, p) or (short and fnmatch.fnmatchcase(short, p))
                for p in patterns
            )

        if self.include and not hit(self.include):
            return False
        return not hit(self.exclude)
