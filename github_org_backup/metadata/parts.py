"""What every part of a metadata backup shares: reading a list into one document, with the
ETags of its pages kept in the run's state, and turning a part's failure into its outcome."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from github_org_backup.errors import BackupError, DiscoveryStopped, GitHubRefused
from github_org_backup.github.metadata import Listing, MetadataReader, PageTag
from github_org_backup.metadata.store import MetadataStore
from github_org_backup.output.metadata_report import MetadataTally, PartOutcome, PartStatus

log = structlog.get_logger("github_org_backup.metadata")

_NUMBER_AT_END = re.compile(r"/(\d{1,12})$")


def number(item: Any, key: str = "number") -> int | None:
    value = item.get(key) if isinstance(item, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def number_in(item: Any, url_key: str) -> int | None:
    """The number a URL field ends with (a comment's ``issue_url`` names its issue)."""
    url = item.get(url_key) if isinstance(item, dict) else None
    found = _NUMBER_AT_END.search(url) if isinstance(url, str) else None
    return int(found.group(1)) if found else None


def list_state(listing: Listing) -> dict[str, Any]:
    return {"pages": [t.to_json() for t in listing.pages], "last": listing.last_page_items}


def known_pages(state: Any) -> tuple[tuple[PageTag, ...], int]:
    """The pages a list had at the last run, from its state; nothing if the state is off-shape."""
    if not isinstance(state, dict) or not isinstance(state.get("pages"), list):
        return (), 0
    tags = []
    for entry in state["pages"]:
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)):
            return (), 0
        tags.append(PageTag(entry[0], entry[1] if isinstance(entry[1], str) else None))
    last = state.get("last")
    return tuple(tags), last if isinstance(last, int) else 0


@dataclass
class Part:
    """One part's run: its state in, its state out, the documents it wrote."""

    scope: str
    kind: str
    old: dict[str, Any]
    new: dict[str, Any] = field(default_factory=dict)
    written: set[tuple[str, ...]] = field(default_factory=set)
    changed: bool = False
    skipped: list[str] = field(default_factory=list)  # items off shape, not stored

    @property
    def documents(self) -> int:
        """Documents this part wrote or removed."""
        return len(self.written)

    def wrote(self, *where: str) -> None:
        self.written.add(where)
        self.changed = True

    def skip(self, why: str) -> None:
        """An item that cannot be stored: the part fails, so its state stays as it was and
        the next run reads the item again."""
        self.skipped.append(why)

    def skipped_error(self) -> str | None:
        if not self.skipped:
            return None
        shown = "; ".join(self.skipped[:3])
        more = f" and {len(self.skipped) - 3} more" if len(self.skipped) > 3 else ""
        return f"{len(self.skipped)} items off GitHub's shape not stored: {shown}{more}"


class PartRunner:
    """Runs parts against one reader and store, each failure its own."""

    def __init__(self, reader: MetadataReader, store: MetadataStore, tally: MetadataTally) -> None:
        self.reader = reader
        self.store = store
        self.tally = tally
        self.outcomes: list[PartOutcome] = []

    def run(
        self,
        scope: str,
        kind: str,
        state: dict[str, Any],
        work: Callable[[Part], None],
        *,
        absent_on: tuple[int, ...] = (),
    ) -> None:
        """Run ``work``; on success its new state replaces ``state[kind]``, on failure the old
        one stays, so the next run asks again."""
        old = state.get(kind)
        part = Part(scope, kind, old if isinstance(old, dict) else {})
        status: PartStatus
        error = None
        try:
            work(part)
            error = part.skipped_error()
            if error is None:
                status = "updated" if part.changed else "unchanged"
                state[kind] = part.new
            else:
                status = "failed"
        except GitHubRefused as exc:
            if exc.status in absent_on:
                status, part.new = "absent", {}
                state[kind] = {}
                log.info("metadata_absent", scope=scope, kind=kind, status=exc.status)
            else:
                status, error = "failed", str(exc)
        except DiscoveryStopped:
            raise  # a stop, not this part's failure
        except BackupError as exc:
            status, error = "failed", str(exc)
        except (OSError, ValueError) as exc:  # a full disk; an answer off every shape
            status, error = "failed", f"{type(exc).__name__}: {exc}"
        self._record(PartOutcome(scope, kind, status, part.documents, error))

    def list_document(
        self,
        part: Part,
        path: str,
        params: dict[str, str],
        where: tuple[str, ...],
        key: str | None = None,
        *,
        write: bool = True,
    ) -> list[Any] | None:
        """Read a list whole into the document at ``where`` (or, without ``write``, for the
        documents in the folder ``where``); None when it is unchanged."""
        tags, last = known_pages(part.old)
        if write and not self.store.path(*where).exists():
            tags = ()  # the document is gone: read the list again
        listing = self.reader.read_list(path, params, tags, last, key)
        part.new = list_state(listing)
        if listing.items is None:
            return None
        if write and self.store.write(listing.items, *where):
            part.wrote(*where)
        return listing.items

    def absent(self, scope: str, kind: str, state: dict[str, Any]) -> None:
        """A kind the repository does not have (its issues disabled)."""
        state[kind] = {}
        self._record(PartOutcome(scope, kind, "absent"))

    def failed(self, scope: str, kind: str, error: str) -> None:
        self._record(PartOutcome(scope, kind, "failed", 0, error))

    def _record(self, outcome: PartOutcome) -> None:
        if outcome.error is not None:
            log.error(
                "metadata_failed", scope=outcome.scope, kind=outcome.kind, error=outcome.error
            )
        self.tally.add(outcome)
        self.outcomes.append(outcome)
