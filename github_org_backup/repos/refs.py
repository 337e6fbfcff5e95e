"""Ref changes of a mirror: what moved, where the old tips are kept, and the update-ref
transactions that apply it all without losing a commit.

A fetch lands in ``refs/incoming/*`` first. The mirror's own refs then move in one
``git update-ref --stdin`` transaction that also keeps every tip the source rewound or deleted
under ``refs/backup/<UTC time>/<heads|tags|pull>/...``. A run killed at any point leaves the
mirror's refs as they were before it, or as they are after it. The one exception is a rename
across a name clash (``foo`` to ``foo/bar``), which git cannot do in one transaction: the old
tips are kept and the deletions made first, then the rest, so a run killed in between leaves
every old tip under refs/backup/ and the new refs for the next run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

INCOMING = "refs/incoming/"
BACKUP = "refs/backup/"

ChangeKind = Literal["created", "fast-forward", "forced", "deleted"]


@dataclass(frozen=True)
class RefChange:
    ref: str
    old: str | None
    new: str | None
    kind: ChangeKind
    kept_as: str | None = None  # the refs/backup/... ref that keeps ``old``

    def to_json(self) -> dict[str, str | None]:
        return {
            "ref": self.ref,
            "old": self.old,
            "new": self.new,
            "change": self.kind,
            "kept_as": self.kept_as,
        }


def transactions(changes: Sequence[RefChange], fetched: Sequence[str]) -> list[list[str]]:
    """The update-ref transactions that apply ``changes`` and drop the ``fetched`` refs.

    One, unless a ref created clashes with one deleted (``foo`` and ``foo/bar``): git's files
    backend cannot do both in one transaction. Then the first keeps every old tip under
    refs/backup/ and deletes, and the second creates and updates, so nothing is lost between them.
    """
    keep = [f"create {c.kept_as} {c.old}" for c in changes if c.kept_as]
    deletions = [f"delete {c.ref} {c.old}" for c in changes if c.new is None]
    writes = [
        f"create {c.ref} {c.new}" if c.old is None else f"update {c.ref} {c.new} {c.old}"
        for c in changes
        if c.new is not None
    ]
    deleted = RefNames(c.ref for c in changes if c.new is None)
    if any(deleted.clashes(c.ref) for c in changes if c.old is None):
        return [keep + deletions, writes + list(fetched)]
    together = keep + deletions + writes + list(fetched)
    return [together] if together else []


def kept_clear_of(
    taken: Iterable[str], changes: Sequence[RefChange], stamp: str
) -> list[RefChange]:
    """``changes`` whose backup names clear the refs/backup/ refs ``taken``.

    Names of one run never clash with each other: they copy refs the mirror holds together. A
    run in the same second as an earlier one may find refs/backup/<time>/heads/foo taken, or
    blocking .../heads/foo/bar; then this run's backups move together to <time>-2, <time>-3, ...
    """
    base = f"{BACKUP}{stamp}/"
    relative = [c.kept_as.removeprefix(base) for c in changes if c.kept_as]
    if not relative:
        return list(changes)
    names = RefNames(ref for ref in taken if ref.startswith(f"{BACKUP}{stamp}"))
    prefix, n = base, 1
    while any(names.clashes(prefix + name) for name in relative):
        n += 1
        prefix = f"{BACKUP}{stamp}-{n}/"
    if prefix == base:
        return list(changes)
    return [
        replace(c, kept_as=prefix + c.kept_as.removeprefix(base)) if c.kept_as else c
        for c in changes
    ]


class RefNames:
    """A set of ref names that tells which others git would refuse next to them: the same
    name, or one that is a directory of the other (``foo`` and ``foo/bar``)."""

    def __init__(self, refs: Iterable[str]) -> None:
        self._refs = set(refs)
        self._directories = {
            ref[:i] for ref in self._refs for i, char in enumerate(ref) if char == "/"
        }

    def clashes(self, ref: str) -> bool:
        if ref in self._refs or ref in self._directories:
            return True
        return any(ref[:i] in self._refs for i, char in enumerate(ref) if char == "/")


def worth_keeping(ref: str) -> bool:
    """GitHub recomputes refs/pull/N/merge at will: its old values are not history."""
    return not (ref.startswith("refs/pull/") and ref.endswith("/merge"))


_BRANCH = re.compile(r"[A-Za-z0-9._/-]{1,255}", re.ASCII)


def branch_name(name: str) -> bool:
    """A name ``git check-ref-format --branch`` would take (the ASCII subset GitHub uses)."""
    return bool(
        _BRANCH.fullmatch(name)
        and ".." not in name
        and "//" not in name
        and not name.startswith(("/", ".", "-"))
        and not name.endswith((".", "/", ".lock"))
        and "/." not in name
    )
