"""What ``repos --metadata`` reports, typed: one ``PartOutcome`` per kind of one repository
(or part of the organisation's configuration), and the run's ``MetadataCounts``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

PartStatus = Literal["updated", "unchanged", "absent", "failed"]
COUNTED_KINDS = ("issues", "pulls", "releases", "assets", "labels", "milestones", "org")


@dataclass(frozen=True)
class PartOutcome:
    """One kind of one repository (``issues`` of acme/app), or one part of the organisation's
    configuration (``org/hooks``): what the run did, how many documents it wrote."""

    scope: str  # OWNER/REPO, or OWNER for the organisation's configuration
    kind: str
    status: PartStatus
    documents: int = 0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "kind": self.kind,
            "status": self.status,
            "documents": self.documents,
            "error": self.error,
        }


@dataclass
class MetadataTally:
    """The run's figures as it goes; ``freeze`` at its end."""

    documents: dict[str, int] = field(default_factory=dict)  # kind -> documents written
    failed: int = 0
    assets: int = 0  # downloaded this run
    assets_held: int = 0  # already kept, not downloaded again
    assets_failed: int = 0
    asset_bytes: int = 0
    repositories_done: int = 0
    repositories_total: int = 0

    def add(self, outcome: PartOutcome) -> None:
        top = outcome.kind.partition("/")[0]
        self.documents[top] = self.documents.get(top, 0) + outcome.documents
        if outcome.status == "failed":
            self.failed += 1

    def freeze(
        self, requests: int, not_modified: int, commit: str | None, store: str
    ) -> MetadataCounts:
        return MetadataCounts(
            tuple(sorted(self.documents.items())),
            self.failed,
            self.assets,
            self.assets_held,
            self.assets_failed,
            self.asset_bytes,
            requests,
            not_modified,
            commit,
            store,
        )


@dataclass(frozen=True)
class MetadataCounts:
    """What the metadata part of a run did. ``requests_counted`` is what counts against
    GitHub's rate limit: every answer that was not a 304."""

    documents: tuple[tuple[str, int], ...]
    failed: int
    assets_downloaded: int
    assets_held: int
    assets_failed: int
    asset_bytes: int
    requests: int
    requests_not_modified: int
    commit: str | None  # the store's commit of this run; None when nothing changed
    store: str

    @property
    def requests_counted(self) -> int:
        return self.requests - self.requests_not_modified

    def written(self, kind: str) -> int:
        return dict(self.documents).get(kind, 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "commit": self.commit,
            "documents_written": {kind: self.written(kind) for kind in COUNTED_KINDS},
            "parts_failed": self.failed,
            "assets_downloaded": self.assets_downloaded,
            "assets_already_held": self.assets_held,
            "assets_failed": self.assets_failed,
            "asset_bytes_downloaded": self.asset_bytes,
            "github_requests": self.requests,
            "github_requests_not_modified": self.requests_not_modified,
            "github_requests_counted": self.requests_counted,
        }


@dataclass(frozen=True)
class MetadataReport:
    counts: MetadataCounts
    parts: tuple[PartOutcome, ...] = ()

    @property
    def any_failed(self) -> bool:
        return self.counts.failed > 0 or self.counts.assets_failed > 0

    def to_json(self) -> dict[str, Any]:
        return {
            "summary": self.counts.to_json(),
            "parts": [p.to_json() for p in self.parts if p.status != "unchanged"],
        }
