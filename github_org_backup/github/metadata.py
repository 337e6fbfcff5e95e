"""Read GitHub's metadata lists cheaply: conditional on what the last run saw, and only what
changed since.

Two shapes of list:

- **lists read whole** (labels, milestones, releases, members, teams, hooks, ...): every page
  is asked for with the ETag it had, and all 304 means unchanged (a 304 on an authorized
  request does not count against the rate limit). If any page changed the list is read again,
  page by page through ``Link``.
- **lists sorted by update** (issues, comments, pulls, review comments): the newest page is
  the probe. A 304 means nothing in the list changed; otherwise only what changed since the
  last run's high-water mark is read: from the probe page if it reaches back that far, else
  through ``since`` where GitHub has it, else page by page until older items begin.

Page numbers shift under a reader while the list changes. Newest first, an item updated
mid-read moves to the front: a later page repeats an item, and the moved one's new state is
newer than the high-water mark, so the next run reads it. Oldest first it would move to the
back past a page not yet read and push an unread item onto a page already read. So ``since``
reads go oldest first by a cursor instead of page numbers: each request asks ``since`` the
newest stamp the last page held, and an item edited mid-read is met again at the end.
Repeats are folded by id, the newest state kept.

Every function here runs on the client's worker thread (``GitHubClient.call``). Pages follow
``Link`` and may never leave the API the user named (``github.http.next_link``); a listing
still linking a next page after GITHUB_API_MAX_PAGES is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from github_org_backup.errors import GitHubAnswerInvalid, GitHubRefused, TooManyPages
from github_org_backup.github.client import Answer, GitHubClient
from github_org_backup.github.http import PAGE_SIZE

_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
# `since` is compared at the second; a change in the same second as the last read must not be
# missed, so the next run asks from one second before the newest item it saw.
_SINCE_OVERLAP = timedelta(seconds=1)
_FUTURE_SLACK = timedelta(days=1)  # a far-future stamp would hide every later change


@dataclass(frozen=True)
class PageTag:
    """One page as last read: its path with query, and its ETag."""

    path: str
    etag: str | None

    def to_json(self) -> list[str | None]:
        return [self.path, self.etag]


@dataclass(frozen=True)
class Listing:
    """A list read whole; ``items`` is None when every page was unchanged."""

    items: list[Any] | None
    pages: tuple[PageTag, ...]
    last_page_items: int


@dataclass(frozen=True)
class Changes:
    """What changed in a list sorted by update; ``items`` is None when nothing did."""

    items: list[Any] | None
    etag: str | None
    high_water: str | None  # the newest updated_at now held


def with_query(path: str, params: dict[str, str]) -> str:
    return f"{path}?{urlencode(params)}" if params else path


def updated_at(item: Any) -> str:
    """The item's ``updated_at`` if it is a real time not in the future, else ""."""
    value = item.get("updated_at") if isinstance(item, dict) else None
    if not isinstance(value, str) or not _ISO.fullmatch(value):
        return ""
    try:
        moment = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:  # 2099-02-30: the digits fit, the date does not
        return ""
    return value if moment <= datetime.now(UTC) + _FUTURE_SLACK else ""


def newest(items: list[Any], high_water: str | None) -> str | None:
    stamps = [s for s in (updated_at(i) for i in items) if s]
    if high_water:
        stamps.append(high_water)
    return max(stamps) if stamps else None


def newest_per_id(items: list[Any]) -> list[Any]:
    """``items`` with repeats of one id folded into its newest state, in first-seen order."""
    keep: dict[Any, int] = {}
    out: list[Any] = []
    for item in items:
        ident = item.get("id") if isinstance(item, dict) else None
        if not isinstance(ident, int) or isinstance(ident, bool):
            out.append(item)
            continue
        at = keep.get(ident)
        if at is None:
            keep[ident] = len(out)
            out.append(item)
        elif updated_at(item) >= updated_at(out[at]):
            out[at] = item
    return out


_BEGINNING = "1970-01-01T00:00:00Z"  # since for a first read: every item


def _ascending(since: str) -> dict[str, str]:
    return {"direction": "asc", "since": since, "per_page": str(PAGE_SIZE)}


def _since(high_water: str) -> str:
    moment = datetime.strptime(high_water, "%Y-%m-%dT%H:%M:%SZ") - _SINCE_OVERLAP
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class MetadataReader:
    """Conditional, bounded reads of one API's metadata lists."""

    def __init__(self, client: GitHubClient) -> None:
        self.client = client
        self.api_url = client.api_url
        self._max_pages = client.limits.max_pages

    def _items(self, answer: Answer, path: str, key: str | None) -> list[Any]:
        data = answer.data
        if key is not None and isinstance(data, dict):
            data = data.get(key)
        if not isinstance(data, list):
            shape = f"an object with a {key!r} list" if key else "a list"
            raise GitHubAnswerInvalid(
                f"GitHub answered {self.api_url}{path.partition('?')[0]} without {shape}"
            )
        return data

    def get_object(self, path: str, etag: str | None) -> tuple[Any, str | None]:
        """One object; None for the data when it is unchanged since ``etag``."""
        answer = self.client.get_json(path, None, etag)
        if answer.status == 304:
            return None, answer.etag
        if not isinstance(answer.data, dict):
            raise GitHubAnswerInvalid(f"GitHub answered {self.api_url}{path} without an object")
        return answer.data, answer.etag

    def _pages_from(
        self, first: Answer, path: str, key: str | None
    ) -> tuple[list[Any], list[PageTag], int]:
        """The items of ``first`` (the answer for ``path``) and of every page linked after
        it; each page's tag; how many items the last page held."""
        items = list(self._items(first, path, key))
        tags, last, answer = [PageTag(path, first.etag)], len(items), first
        while answer.next_path is not None:
            if len(tags) >= self._max_pages:
                raise TooManyPages(len(tags), len(items), self.api_url + path)
            next_path = answer.next_path
            answer = self.client.get_json(next_path, None)
            page = self._items(answer, next_path, key)
            tags.append(PageTag(next_path, answer.etag))
            items += page
            last = len(page)
        return items, tags, last

    def read_list(
        self,
        path: str,
        params: dict[str, str],
        known: tuple[PageTag, ...] = (),
        last_page_items: int = 0,
        key: str | None = None,
    ) -> Listing:
        """A list read whole, or None for its items when every page of ``known`` is unchanged
        (and the last was not full, so no page can have been added after it)."""
        first_path = with_query(path, params | {"per_page": str(PAGE_SIZE)})
        answer: Answer | None = None
        if known and last_page_items < PAGE_SIZE:
            for index, tag in enumerate(known):
                checked = self.client.get_json(tag.path, None, tag.etag) if tag.etag else None
                if checked is not None and checked.status == 304:
                    continue
                if index == 0 and checked is not None and tag.path == first_path:
                    answer = checked  # the first page changed: its answer starts the read
                break
            else:
                return Listing(None, known, last_page_items)
        if answer is None:
            answer = self.client.get_json(first_path, None)
        items, tags, last = self._pages_from(answer, first_path, key)
        if last == PAGE_SIZE:
            last = self._empty_page_after(path, params, key, tags, last)
        return Listing(items, tuple(tags), last)

    def _empty_page_after(
        self, path: str, params: dict[str, str], key: str | None, tags: list[PageTag], last: int
    ) -> int:
        """A full last page cannot say that no page was added after it, so the empty page
        after it is asked once and its tag kept: the next run checks it with the others.
        Anything but an empty last page keeps ``last`` full, and the next run reads again."""
        after = with_query(path, params | {"per_page": str(PAGE_SIZE), "page": str(len(tags) + 1)})
        try:
            answer = self.client.get_json(after, None)
            empty = answer.next_path is None and not self._items(answer, after, key)
        except (GitHubRefused, GitHubAnswerInvalid):  # the list was read whole all the same
            return last
        if empty and answer.etag:
            tags.append(PageTag(after, answer.etag))
            return 0
        return last

    def read_changes(
        self,
        path: str,
        params: dict[str, str],
        etag: str | None,
        high_water: str | None,
        *,
        has_since: bool,
    ) -> Changes:
        """What changed in a list sorted newest-updated first (``params`` sort it so), since
        ``high_water``; everything when there is none."""
        probe = with_query(path, params | {"per_page": str(PAGE_SIZE)})
        answer = self.client.get_json(probe, None, etag)
        if answer.status == 304:
            return Changes(None, answer.etag, high_water)
        first = self._items(answer, probe, None)
        if high_water is None and (answer.next_path is None or not has_since):
            # The first read (or the list was empty then): one page, or pages by number
            # for a list without since (pull requests, which cannot be deleted).
            items, _, _ = self._pages_from(answer, probe, None)
            return Changes(items, answer.etag, newest(items, None))
        since = _since(high_water) if high_water else _BEGINNING
        oldest = updated_at(first[-1]) if first else ""
        reaches_back = bool(oldest) and oldest < since
        dense_at, began = None, updated_at(first[0]) if first else ""
        if answer.next_path is None or reaches_back:
            changed = [i for i in first if updated_at(i) >= since or not updated_at(i)]
        elif has_since:
            # By a cursor on time, also on a first read: a deletion mid-read shifts pages
            # by number, and would push an unread item onto a page already read.
            changed, dense_at = self._since_cursor(path, params, since)
        else:
            changed = self._until(answer, probe, since)
        changed = newest_per_id(changed)
        mark = newest(changed, high_water)
        if dense_at is not None and any(updated_at(i) > began for i in changed):
            # Pages were crossed by number while the list changed: an item may have been
            # pushed onto a page already read, so the next run starts from the dense second.
            mark = dense_at
        return Changes(changed, answer.etag, mark)

    def _since_cursor(
        self, path: str, params: dict[str, str], since: str
    ) -> tuple[list[Any], str | None]:
        """Every item updated at or after ``since``, oldest first, each request starting
        from the newest stamp the last page held. A second denser than a page is crossed
        through ``Link`` instead, as the cursor cannot move past it: the cursor where that
        first happened is returned with the items."""
        changed: list[Any] = []
        cursor, dense_at = since, None
        next_path = with_query(path, params | _ascending(cursor))
        for _ in range(self._max_pages):
            answer = self.client.get_json(next_path, None)
            page = self._items(answer, next_path, None)
            changed += page
            if answer.next_path is None:
                return changed, dense_at
            stamp = updated_at(page[-1]) if page else ""
            if stamp and _since(stamp) > cursor:
                cursor = _since(stamp)
                next_path = with_query(path, params | _ascending(cursor))
            else:
                dense_at = dense_at or cursor
                next_path = answer.next_path
        raise TooManyPages(self._max_pages, len(changed), self.api_url + path)

    def _until(self, first: Answer, path: str, since: str) -> list[Any]:
        """Pages of a newest-first list, up to the first item older than ``since``."""
        changed: list[Any] = []
        answer, pages = first, 1
        while True:
            page = self._items(answer, path, None)
            for item in page:
                stamp = updated_at(item)
                if stamp and stamp < since:
                    return changed
                changed.append(item)
            if answer.next_path is None:
                return changed
            if pages >= self._max_pages:
                raise TooManyPages(pages, len(changed), self.api_url + path)
            path = answer.next_path
            answer, pages = self.client.get_json(path, None), pages + 1
