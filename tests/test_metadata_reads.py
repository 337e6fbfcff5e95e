"""Lists sorted by update, read while they change: an item edited between two page requests
shifts every page after it. No item may be lost to that, and the high-water mark may never
pass an item that was not read."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from github_org_backup.errors import TooManyPages
from github_org_backup.github.client import Answer
from github_org_backup.github.http import ApiLimits
from github_org_backup.github.metadata import MetadataReader, newest_per_id

BASE = datetime(2026, 1, 1, tzinfo=UTC)
NEWEST_FIRST = {"state": "all", "sort": "updated", "direction": "desc"}


def stamp(seconds: int) -> str:
    return (BASE + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class LiveList:
    """One GitHub list as GitHub serves it: sorted by updated_at, filtered by an inclusive
    ``since``, paged by number through ``Link``; ``between`` runs after every answer, as
    edits that land while the reader is between pages."""

    updated: dict[int, int]  # id -> seconds after BASE
    between: list[Any] = field(default_factory=list)
    asked: list[str] = field(default_factory=list)
    api_url: str = "https://api.example.com"
    limits: ApiLimits = field(default_factory=ApiLimits)

    def get_json(self, path: str, params: Any, etag: str | None = None) -> Answer:
        self.asked.append(path)
        split = urlsplit(path)
        query = {k: v[0] for k, v in parse_qs(split.query).items()}
        rows = sorted(self.updated.items(), key=lambda kv: (kv[1], kv[0]))
        if query.get("direction") != "asc":
            rows.reverse()
        if "since" in query:
            rows = [r for r in rows if stamp(r[1]) >= query["since"]]
        size, page = int(query.get("per_page", "30")), int(query.get("page", "1"))
        chosen = rows[(page - 1) * size : page * size]
        more = page * size < len(rows)
        next_path = f"{split.path}?{urlencode(query | {'page': str(page + 1)})}" if more else None
        items = [{"id": i, "updated_at": stamp(s), "v": s} for i, s in chosen]
        if self.between:
            self.between.pop(0)(self)
        return Answer(200, items, f'W/"{len(self.asked)}"', next_path)


def _edit(ident: int, seconds: int) -> Any:
    def edit(live: LiveList) -> None:
        live.updated[ident] = seconds

    return edit


def _nothing(live: LiveList) -> None:
    return None


def test_an_item_edited_mid_read_neither_hides_another_nor_is_lost() -> None:
    """250 issues changed since the last run, more than the probe page. While the since read
    is between its first and second page, an early issue is edited: asked by page number
    oldest first, the issue that slid onto the page already read would be skipped and the
    high-water mark would pass it. Every issue is read, the edited one in its newest state."""
    live = LiveList({i: 10 + i for i in range(1, 251)})
    live.between = [_nothing, _edit(5, 400)]  # after the probe, after the first since page
    changes = MetadataReader(live).read_changes(  # type: ignore[arg-type]
        "/r/issues", NEWEST_FIRST, 'W/"old"', stamp(5), has_since=True
    )
    by_id = {item["id"]: item for item in changes.items or []}
    assert set(by_id) == set(range(1, 251))
    assert by_id[5]["v"] == 400
    assert len(changes.items or []) == 250  # repeats folded
    assert changes.high_water == stamp(400)
    assert all("&page=" not in path for path in live.asked[1:]), live.asked


def test_a_second_denser_than_a_page_is_crossed_through_link() -> None:
    """150 comments in one second: the cursor cannot move past it, so the next page is
    followed through Link instead of asking the same page for ever."""
    live = LiveList({i: 100 for i in range(1, 151)} | {200: 101, 201: 300})
    live.updated |= {i: 1 for i in range(300, 400)}  # older than the last run
    changes = MetadataReader(live).read_changes(  # type: ignore[arg-type]
        "/r/issues/comments", NEWEST_FIRST, None, stamp(50), has_since=True
    )
    assert {item["id"] for item in changes.items or []} == set(range(1, 151)) | {200, 201}
    assert len(live.asked) <= 5


def test_a_since_read_that_never_ends_is_refused_naming_its_list() -> None:
    """A list linking pages past GITHUB_API_MAX_PAGES is a failure naming the list."""
    live = LiveList({i: 10 for i in range(1, 1000)})
    reader = MetadataReader(live)  # type: ignore[arg-type]
    reader._max_pages = 3
    with pytest.raises(TooManyPages, match=r"https://api\.example\.com/r/issues still linked"):
        reader.read_changes("/r/issues", NEWEST_FIRST, None, stamp(1), has_since=True)


def test_repeats_keep_their_newest_state() -> None:
    old, new = {"id": 1, "updated_at": stamp(1)}, {"id": 1, "updated_at": stamp(9)}
    assert newest_per_id([new, {"id": 2}, old]) == [new, {"id": 2}]
    assert newest_per_id([old, new]) == [new]


def _delete(ident: int) -> Any:
    def delete(live: LiveList) -> None:
        del live.updated[ident]

    return delete


def test_a_first_read_loses_nothing_to_a_deletion_mid_read() -> None:
    """The first read of 250 comments: after its first page the newest comment is deleted.
    Asked by page number newest first, the comment that slid back onto the page already read
    would be missed, and every later run would start after it. Read by the time cursor, every
    remaining comment is read."""
    live = LiveList({i: 10 + i for i in range(1, 251)})
    live.between = [_delete(250)]  # after the probe page, which held it
    changes = MetadataReader(live).read_changes(  # type: ignore[arg-type]
        "/r/issues/comments", NEWEST_FIRST, None, None, has_since=True
    )
    assert {item["id"] for item in changes.items or []} >= set(range(1, 250))
    assert changes.high_water == stamp(259)


def test_an_edit_while_a_dense_second_is_crossed_by_number_holds_the_mark_back() -> None:
    """150 comments in one second are crossed through Link by page number. An edit between
    those pages slides an unread comment onto the page already read: this run cannot see it,
    so the high-water mark stays before the dense second, and the next run reads it."""
    live = LiveList({i: 100 for i in range(1, 151)})
    # after the probe, after the first cursor page: comment 1 (read) is edited
    live.between = [_nothing, _edit(1, 400)]
    reader = MetadataReader(live)  # type: ignore[arg-type]
    changes = reader.read_changes(
        "/r/issues/comments", NEWEST_FIRST, None, stamp(50), has_since=True
    )
    assert changes.high_water is not None and changes.high_water < stamp(100)
    later = reader.read_changes(
        "/r/issues/comments", NEWEST_FIRST, None, changes.high_water, has_since=True
    )
    assert {item["id"] for item in later.items or []} >= set(range(1, 151))
