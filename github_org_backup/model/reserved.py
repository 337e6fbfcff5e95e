"""The names the tool writes in a backup, reserved: no source tag, package or copy spec takes them.

Below a backup's prefix the tool writes the repository ``snapshots.github-org-backup`` (its
shard series below it, the snapshots tagged by id, the discovery cache and the forgotten-tags
ledger beside them) and, in every backed-up repository, the history tag
``github-org-backup.history``. A source tag of that name would overwrite the history index,
and the digests only it kept reachable would go to the next garbage collection.

So the tool's namespace is reserved as a whole, not name by name: every tag that starts with
``github-org-backup.`` (in any case), and every repository with a path component that ends in
``.github-org-backup``. GitHub owner names contain no dot, so no ordinary package is refused.
"""

from __future__ import annotations

import structlog

from github_org_backup.model.reference import Reference, Repository

log = structlog.get_logger("github_org_backup.model.reserved")

NAMESPACE = "github-org-backup"
SNAPSHOT_REPOSITORY = f"snapshots.{NAMESPACE}"  # below the prefix: snapshots, cache, ledger
HISTORY_TAG = f"{NAMESPACE}.history"  # in every backed-up repository: the history index
_TAG_PREFIX = f"{NAMESPACE}."
_COMPONENT_SUFFIX = f".{NAMESPACE}"


def reserved_tag(tag: str) -> str | None:
    """Why ``tag`` is the tool's own, or None."""
    if tag.casefold().startswith(_TAG_PREFIX):
        return (
            f"tag {tag!r} is reserved: tags starting with {_TAG_PREFIX!r} are the backup's own "
            f"(its history index is {HISTORY_TAG!r}); rename the tag at the source"
        )
    return None


def reserved_path(path: str) -> str | None:
    """Why a repository path (below a prefix, or a whole name) is the tool's own, or None."""
    for component in path.split("/"):
        if component.casefold().endswith(_COMPONENT_SUFFIX):
            return (
                f"repository {path!r} is reserved: a path component ending in "
                f"{_COMPONENT_SUFFIX!r} is the backup's own (its snapshots live in "
                f"{SNAPSHOT_REPOSITORY!r}); rename the package or pick another destination"
            )
    return None


def reserved_destination(reference: Reference) -> str | None:
    """Why writing ``reference`` would overwrite a name the tool writes, or None."""
    return reserved_path(reference.repository.name) or (
        reserved_tag(reference.tag) if reference.tag is not None else None
    )


def is_reserved(repository: str, tag: str | None = None) -> bool:
    """Whether (repository below a prefix, tag) lies in the tool's namespace."""
    return reserved_path(repository) is not None or (
        tag is not None and reserved_tag(tag) is not None
    )


def refuse(where: Repository | Reference | str, reason: str) -> None:
    """Log one refusal; the caller reports it as that input's failure."""
    log.error("reserved_name_refused", destination=str(where), reason=reason)
