"""The pure parts of the metadata backup: the --metadata grammar, store paths, asset objects
off GitHub's shape, and how lists sorted by update are read (probe, since, page by page)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from github_org_backup.errors import GitHubRefused, MetadataStoreError, UsageError
from github_org_backup.github.client import Answer
from github_org_backup.github.http import ApiLimits
from github_org_backup.github.metadata import MetadataReader, PageTag
from github_org_backup.metadata.assets import Asset
from github_org_backup.metadata.kinds import Kind, Selection
from github_org_backup.metadata.store import MetadataStore, _checked

SHA = "ab" * 32


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        (None, set()),
        ("all", set(Kind)),
        ("", set(Kind)),
        ("issues,releases", {Kind.ISSUES, Kind.RELEASES}),
        (" Pulls , org ", {Kind.PULLS, Kind.ORG}),
    ],
)
def test_the_metadata_grammar(text: str | None, kinds: set[Kind]) -> None:
    """Bare --metadata means every kind; a comma list picks some, in any case and spacing."""
    assert set(Selection.parse(text).kinds) == kinds


def test_an_unknown_kind_names_the_known_ones() -> None:
    """A typo is a usage error that lists what may be chosen."""
    with pytest.raises(UsageError, match="unknown kind 'isues'.*issues, pulls, releases"):
        Selection.parse("isues,pulls")


@pytest.mark.parametrize("name", [".github", "app", "a.b-c_d", "v1.2"])
def test_store_paths_take_repository_names(name: str) -> None:
    """GitHub's repository names, .github among them, are store folders."""
    assert _checked(("repos", name, "issues", "1.json")) == ("repos", name, "issues", "1.json")


@pytest.mark.parametrize("name", [".git", ".GIT", "..", ".", "a/b", "", "x" * 101, "é"])
def test_store_paths_refuse_what_could_leave_or_hide_in_the_tree(name: str) -> None:
    """A part that would climb out, name a folder git ignores, or is no GitHub name."""
    with pytest.raises(MetadataStoreError):
        _checked(("repos", name))


@pytest.mark.parametrize(
    ("item", "why"),
    [
        ("x", "not an object"),
        ({"id": True, "size": 1}, "no numeric id"),
        ({"id": 1, "size": -1}, "no size"),
        ({"id": 1, "size": "9"}, "no size"),
        ({"id": 1, "size": 3 * 1024**3}, "more than GitHub keeps"),
        ({"id": 1, "size": 1, "digest": "md5:00"}, "not sha256"),
    ],
)
def test_asset_objects_off_githubs_shape_are_refused(item: Any, why: str) -> None:
    """An asset object without a usable id, size or digest is that asset's failure."""
    found = Asset.from_api(item)
    assert isinstance(found, str) and why in found


def test_an_asset_object_in_githubs_shape() -> None:
    asset = Asset.from_api(
        {"id": 7, "name": "t.tgz", "size": 3, "digest": f"sha256:{SHA}", "updated_at": "u"}
    )
    assert asset == Asset(7, "t.tgz", 3, SHA, "u")
    assert Asset.from_api({"id": 7, "size": 3, "digest": None}) == Asset(7, "7", 3, None, "")


@dataclass
class Pages:
    """GitHub's answers by path: each a list of items, a 304 for a matching ETag."""

    answers: dict[str, tuple[list[Any], str | None]]
    etags: dict[str, str] = field(default_factory=dict)
    asked: list[tuple[str, str | None]] = field(default_factory=list)
    api_url: str = "https://api.example.com"
    limits: ApiLimits = field(default_factory=ApiLimits)

    def get_json(self, path: str, params: Any, etag: str | None = None) -> Answer:
        self.asked.append((path, etag))
        items, next_path = self.answers[path]
        tag = self.etags.get(path, f'W/"{len(items)}"')
        if etag == tag:
            return Answer(304, None, tag)
        return Answer(200, items, tag, next_path)


def _item(second: int) -> dict[str, Any]:
    return {"id": second, "updated_at": f"2026-01-01T00:00:{second:02d}Z"}


PROBE = "/r/issues?state=all&sort=updated&direction=desc&per_page=100"


def _reader(pages: Pages) -> MetadataReader:
    return MetadataReader(pages)  # type: ignore[arg-type]


def test_a_304_on_the_probe_is_nothing_changed() -> None:
    pages = Pages({PROBE: ([_item(9)], None)}, {PROBE: 'W/"p"'})
    changes = _reader(pages).read_changes(
        "/r/issues",
        {"state": "all", "sort": "updated", "direction": "desc"},
        'W/"p"',
        "2026-01-01T00:00:09Z",
        has_since=True,
    )
    assert changes.items is None and pages.asked == [(PROBE, 'W/"p"')]


def test_a_probe_reaching_back_to_the_last_run_is_all_that_is_read() -> None:
    """The newest page holds an item older than the last run: nothing more is asked."""
    pages = Pages({PROBE: ([_item(30), _item(20), _item(5)], "/r/issues?page=2")})
    changes = _reader(pages).read_changes(
        "/r/issues",
        {"state": "all", "sort": "updated", "direction": "desc"},
        'W/"old"',
        "2026-01-01T00:00:10Z",
        has_since=True,
    )
    assert [i["id"] for i in changes.items or []] == [30, 20]
    assert changes.high_water == "2026-01-01T00:00:30Z"
    assert len(pages.asked) == 1


def test_more_changes_than_the_probe_holds_are_asked_with_since() -> None:
    """Since is one second before the high-water mark, so a change in that second is kept."""
    since = (
        "/r/issues?state=all&sort=updated&direction=asc&since=2026-01-01T00%3A00%3A09Z&per_page=100"
    )
    pages = Pages(
        {
            PROBE: ([_item(30), _item(29)], "/r/issues?page=2"),
            since: ([_item(10), _item(29), _item(30)], None),
        }
    )
    changes = _reader(pages).read_changes(
        "/r/issues",
        {"state": "all", "sort": "updated", "direction": "desc"},
        'W/"old"',
        "2026-01-01T00:00:10Z",
        has_since=True,
    )
    assert [i["id"] for i in changes.items or []] == [10, 29, 30]
    assert [path for path, _ in pages.asked] == [PROBE, since]


def test_a_list_without_since_is_read_until_older_items_begin() -> None:
    probe = "/r/pulls?state=all&sort=updated&direction=desc&per_page=100"
    pages = Pages(
        {
            probe: ([_item(40), _item(35)], "/r/pulls?page=2"),
            "/r/pulls?page=2": ([_item(31), _item(3)], "/r/pulls?page=3"),
        }
    )
    changes = _reader(pages).read_changes(
        "/r/pulls",
        {"state": "all", "sort": "updated", "direction": "desc"},
        None,
        "2026-01-01T00:00:30Z",
        has_since=False,
    )
    assert [i["id"] for i in changes.items or []] == [40, 35, 31]
    assert "/r/pulls?page=3" not in [path for path, _ in pages.asked]


def test_a_list_read_whole_is_unchanged_only_when_every_page_is() -> None:
    """Every known page 304: unchanged, nothing read. One page changed: read again whole."""
    first, second = "/r/labels?per_page=100", "/r/labels?per_page=100&page=2"
    pages = Pages({first: ([1] * 100, second), second: ([2], None)})
    reader = _reader(pages)
    cold = reader.read_list("/r/labels", {})
    assert cold.items == [1] * 100 + [2]
    warm = reader.read_list("/r/labels", {}, cold.pages, cold.last_page_items)
    assert warm.items is None
    pages.etags[second] = 'W/"changed"'
    again = reader.read_list("/r/labels", {}, cold.pages, cold.last_page_items)
    assert again.items == [1] * 100 + [2]
    assert again.pages == (PageTag(first, 'W/"100"'), PageTag(second, 'W/"changed"'))


def test_a_changed_first_page_is_read_once() -> None:
    """The conditional check of a one-page list answered 200: that answer is the list, not
    asked again (a second counted request)."""
    first = "/r/releases?per_page=100"
    pages = Pages({first: ([1, 2], None)})
    reader = _reader(pages)
    cold = reader.read_list("/r/releases", {})
    pages.answers[first] = ([1, 2, 3], None)
    pages.asked.clear()
    again = reader.read_list("/r/releases", {}, cold.pages, cold.last_page_items)
    assert again.items == [1, 2, 3]
    assert pages.asked == [(first, 'W/"2"')]


def test_a_full_last_page_is_checked_through_the_empty_page_after_it() -> None:
    """A list of exactly 100: the empty page 2 is asked once on the first read and its tag
    kept, so the next run is two 304s, not a full read; a page added later is noticed."""
    first, after = "/r/labels?per_page=100", "/r/labels?per_page=100&page=2"
    pages = Pages({first: ([1] * 100, None), after: ([], None)})
    reader = _reader(pages)
    cold = reader.read_list("/r/labels", {})
    assert cold.items == [1] * 100
    assert [tag.path for tag in cold.pages] == [first, after]
    pages.asked.clear()
    warm = reader.read_list("/r/labels", {}, cold.pages, cold.last_page_items)
    assert warm.items is None
    assert pages.asked == [(first, 'W/"100"'), (after, 'W/"0"')]
    pages.answers[first] = ([1] * 100, after)
    pages.answers[after] = ([2], None)
    grown = reader.read_list("/r/labels", {}, cold.pages, cold.last_page_items)
    assert grown.items == [1] * 100 + [2]


def test_a_full_last_page_whose_next_page_is_not_empty_is_read_again_next_run() -> None:
    """An API that ignores ``page`` answers page 1 again: no tag is kept for it, and the
    list is read whole next run rather than trusted."""
    first, after = "/r/hooks?per_page=100", "/r/hooks?per_page=100&page=2"
    pages = Pages({first: ([1] * 100, None), after: ([1] * 100, None)})
    reader = _reader(pages)
    cold = reader.read_list("/r/hooks", {})
    assert cold.items == [1] * 100 and cold.last_page_items == 100
    assert [tag.path for tag in cold.pages] == [first]
    again = reader.read_list("/r/hooks", {}, cold.pages, cold.last_page_items)
    assert again.items == [1] * 100


def test_a_refused_check_of_the_page_after_a_full_list_is_no_failure() -> None:
    """The list was read whole; if the extra request for the page after it is refused, the
    list is still returned, and the next run reads it again."""
    first = "/r/hooks?per_page=100"

    class Refusing(Pages):
        def get_json(self, path: str, params: Any, etag: str | None = None) -> Answer:
            if "page=2" in path:
                raise GitHubRefused(502, "GitHub answered HTTP 502")
            return super().get_json(path, params, etag)

    cold = _reader(Refusing({first: ([1] * 100, None)})).read_list("/r/hooks", {})
    assert cold.items == [1] * 100 and cold.last_page_items == 100


@pytest.mark.integration
def test_the_committed_documents_are_read_back_whole_by_one_git(tmp_path: Path) -> None:
    """verify --repos reads every document of the last commit through one ``git cat-file``:
    many small ones, one larger than a pipe's buffer, and text that is not ASCII."""
    store = MetadataStore(tmp_path)
    store.open()
    written: dict[str, Any] = {
        f"repos/app/issues/{n}.json": {"number": n, "body": "é" * n} for n in range(1, 400)
    }
    written["repos/app/labels.json"] = [{"name": "x" * 200_000}]
    for path, data in written.items():
        store.write(data, *path.split("/"))
    store.commit("run")
    (store.root / "repos" / "app" / "labels.json").write_text("[]")  # not committed: not read

    read = {path: json.loads(body) for path, body in store.committed()}
    assert read == written
