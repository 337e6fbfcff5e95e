"""The kinds of metadata ``repos --metadata`` backs up, and the ``--metadata=KIND,...`` grammar.

Repository kinds are read once per mirrored repository, organisation kinds once per run (for an
organisation owner only: a user has no teams, hooks or rulesets).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from github_org_backup.errors import UsageError


class Kind(StrEnum):
    ISSUES = "issues"  # issues (all states) with their comments
    PULLS = "pulls"  # pull requests with their reviews and review comments
    RELEASES = "releases"  # releases (drafts too) with every asset's bytes
    LABELS = "labels"
    MILESTONES = "milestones"
    ORG = "org"  # the organisation, members, teams, hooks, Actions variables and secret names,
    # rulesets


REPOSITORY_KINDS = (Kind.ISSUES, Kind.PULLS, Kind.RELEASES, Kind.LABELS, Kind.MILESTONES)


@dataclass(frozen=True)
class Selection:
    """The kinds a run backs up; empty when --metadata was not given."""

    kinds: frozenset[Kind] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.kinds)

    def __contains__(self, kind: object) -> bool:
        return kind in self.kinds

    @property
    def repository_kinds(self) -> tuple[Kind, ...]:
        return tuple(k for k in REPOSITORY_KINDS if k in self.kinds)

    @classmethod
    def parse(cls, text: str | None) -> Selection:
        """``None``: no metadata; ``"all"`` (bare --metadata) or a comma list of kinds."""
        if text is None:
            return cls()
        names = [n.strip().lower() for n in text.split(",") if n.strip()]
        if not names or names == ["all"]:
            return cls(frozenset(Kind))
        unknown = [n for n in names if n not in Kind.__members__.values()]
        if unknown:
            known = ", ".join(k.value for k in Kind)
            raise UsageError(
                f"--metadata={text}: unknown kind {', '.join(map(repr, unknown))}; "
                f"choose from {known} (or give --metadata alone for all of them)"
            )
        return cls(frozenset(Kind(n) for n in names))

    def text(self) -> str:
        return ",".join(k.value for k in Kind if k in self.kinds)
