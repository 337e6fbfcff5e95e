"""What a run of the repos command reports, typed: one ``RepoOutcome`` per repository or wiki,
the run's ``RepoCounts``, and the ``ReposReport`` around them, whose ``to_json`` is the report
file. The summaries and the metrics read its fields; the repos command builds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from github_org_backup.output.metadata_report import MetadataReport

RepoStatus = Literal["copied", "unchanged", "failed", "absent"]
RepoKind = Literal["repository", "wiki"]
RefChangeKind = Literal["created", "fast-forward", "forced", "deleted"]


@dataclass(frozen=True)
class RefUpdate:
    """One ref a run moved in a mirror; ``kept_as`` is the refs/backup/... ref keeping ``old``."""

    ref: str
    old: str | None
    new: str | None
    change: RefChangeKind
    kept_as: str | None = None

    @property
    def rewritten_at_source(self) -> bool:
        """The source force-pushed or deleted the ref: its old tip is no longer there."""
        return self.change in ("forced", "deleted")

    def to_json(self) -> dict[str, str | None]:
        return {
            "ref": self.ref,
            "old": self.old,
            "new": self.new,
            "change": self.change,
            "kept_as": self.kept_as,
        }


@dataclass(frozen=True)
class RepoOutcome:
    """One mirror's result; ``path`` is empty when the listing was refused before a folder."""

    repository: str
    path: str
    kind: RepoKind
    status: RepoStatus
    error: str | None = None
    created: bool = False
    refs_updated: int = 0
    ref_changes: tuple[RefUpdate, ...] = ()
    lfs_objects: int | None = None
    duration_s: float = 0.0

    @property
    def refs_kept(self) -> int:
        return sum(1 for change in self.ref_changes if change.kept_as)

    def to_json(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "path": self.path,
            "kind": self.kind,
            "status": self.status,
            "error": self.error,
            "created": self.created,
            "refs_updated": self.refs_updated,
            "ref_changes": [change.to_json() for change in self.ref_changes],
            "lfs_objects": self.lfs_objects,
            "duration_s": self.duration_s,
        }


@dataclass(frozen=True)
class RepoCounts:
    """The run's figures: repositories (and wikis) by outcome, refs moved and kept."""

    total: int = 0
    copied: int = 0
    unchanged: int = 0
    failed: int = 0
    absent: int = 0
    refs_updated: int = 0
    refs_kept: int = 0
    duration_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "repositories_total": self.total,
            "repositories_copied": self.copied,
            "repositories_unchanged": self.unchanged,
            "repositories_failed": self.failed,
            "wikis_absent": self.absent,
            "refs_updated": self.refs_updated,
            "refs_kept": self.refs_kept,
            "duration_s": self.duration_s,
        }


@dataclass(frozen=True)
class Listing:
    """What GitHub listed, and what the run made of it."""

    listed: int
    filtered_out: int
    github_rate_limit_remaining: int | None
    backup_ref_prefix: str  # where this run keeps the tips the source rewrote

    def to_json(self) -> dict[str, Any]:
        return {
            "repositories_listed": self.listed,
            "repositories_filtered_out": self.filtered_out,
            "github_rate_limit_remaining": self.github_rate_limit_remaining,
            "backup_ref_prefix": self.backup_ref_prefix,
        }


@dataclass(frozen=True)
class ReposReport:
    """Everything a run of the repos command reports. ``listing`` is None when GitHub's
    listing failed, and ``discovery_error`` says why; then nothing was mirrored."""

    counts: RepoCounts
    dest: str
    owner: str
    repositories: tuple[RepoOutcome, ...] = ()
    listing: Listing | None = None
    discovery_error: str | None = None
    interrupted: bool = False
    metadata: MetadataReport | None = None  # with --metadata

    @property
    def any_failed(self) -> bool:
        failed_metadata = self.metadata is not None and self.metadata.any_failed
        return self.listing is None or self.counts.failed > 0 or failed_metadata

    def summary(self) -> dict[str, Any]:
        """The report's ``summary``, which the run's last log event (run_finished) repeats."""
        found = self.counts.to_json() | {"dest": self.dest, "owner": self.owner}
        if self.listing is None:
            found["discovery_error"] = self.discovery_error
        else:
            found |= self.listing.to_json()
            found["interrupted"] = self.interrupted
        if self.metadata is not None:
            found["metadata"] = self.metadata.counts.to_json()
        return found

    def to_json(self) -> dict[str, Any]:
        document = {
            "summary": self.summary(),
            "repositories": [outcome.to_json() for outcome in self.repositories],
        }
        if self.metadata is not None:
            document["metadata"] = self.metadata.to_json()["parts"]
        return document
