"""One repository's metadata: issues with their comments, pull requests with their reviews
and review comments, releases with their assets, labels and milestones.

    repos/REPO/issues/N.json     {"issue": ..., "comments": [...]}  (a pull request's
                                 conversation too: GitHub numbers both alike)
    repos/REPO/pulls/N.json      {"pull": ..., "reviews": [...], "review_comments": [...]}
    repos/REPO/releases/ID.json  the release, with its assets' objects
    repos/REPO/assets.json       [{"id", "release_id", "name", "size", "sha256"}]: which
                                 file under assets/sha256/ holds each asset's bytes
    repos/REPO/labels.json, repos/REPO/milestones.json   the lists as GitHub answers them

Comments are merged into their issue's document by id: one that GitHub no longer lists stays
in the tree, and an edited one keeps its earlier text in the store's history.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import structlog

from github_org_backup.errors import AssetMismatch, BackupError, DiscoveryStopped
from github_org_backup.github.metadata import Changes
from github_org_backup.metadata.assets import OCTET_STREAM, Asset, Downloader
from github_org_backup.metadata.kinds import Kind
from github_org_backup.metadata.parts import Part, PartRunner, number, number_in

if TYPE_CHECKING:
    from github_org_backup.github.repos import Repo

log = structlog.get_logger("github_org_backup.metadata")

_NEWEST_FIRST = {"sort": "updated", "direction": "desc"}
_GONE = 410  # "Issues are disabled for this repo"
# With issues disabled GitHub still keeps pull requests' conversations as issue comments; with
# pull requests disabled too it answers 404 or 410 for those as well.
_NONE = (404, _GONE)


def _by_id(old: list[Any], changed: list[Any]) -> list[Any]:
    """``old`` with ``changed`` merged in by id, in id order (comments, review comments)."""
    merged = {number(c, "id"): c for c in old if number(c, "id") is not None}
    merged |= {number(c, "id"): c for c in changed if number(c, "id") is not None}
    return [merged[k] for k in sorted(k for k in merged if k is not None)]


def _at(path: str, index: int) -> str:
    return f"entry {index} of {path}"


class RepositoryBackup:
    """The metadata of one repository, read with the run's reader into its store folder."""

    def __init__(self, runner: PartRunner, downloader: Downloader, repo: Repo) -> None:
        self.runner = runner
        self.reader = runner.reader
        self.store = runner.store
        self.downloader = downloader
        self.full_name = repo.full_name
        self.name = repo.name
        self.has_issues = repo.has_issues
        self.api_path = f"/repos/{quote(repo.owner, safe='')}/{quote(repo.name, safe='')}"

    def run(self, kinds: tuple[Kind, ...], state: dict[str, Any], held: dict[str, Any]) -> None:
        run = self.runner.run
        scope = self.full_name
        for kind in kinds:
            if kind is Kind.ISSUES:
                if self.has_issues:
                    run(scope, "issues", state, self._issues, absent_on=(_GONE,))
                else:
                    self.runner.absent(scope, "issues", state)  # asked, GitHub would answer 410
                if not self.has_issues or self.runner.outcomes[-1].status == "absent":
                    run(scope, "issues/comments", state, self._conversations, absent_on=_NONE)
            elif kind is Kind.PULLS:
                run(scope, "pulls", state, self._pulls)
            elif kind is Kind.RELEASES:
                run(scope, "releases", state, lambda part: self._releases(part, held))
            elif kind is Kind.LABELS:
                run(scope, "labels", state, self._labels)
            elif kind is Kind.MILESTONES:
                run(scope, "milestones", state, self._milestones)

    def _changes(
        self, part: Part, key: str, path: str, params: dict[str, str], **kw: Any
    ) -> Changes:
        old = part.old.get(key)
        old = old if isinstance(old, dict) else {}
        etag, high = old.get("etag"), old.get("high_water")
        changes = self.reader.read_changes(
            self.api_path + path,
            params,
            etag if isinstance(etag, str) else None,
            high if isinstance(high, str) else None,
            **kw,
        )
        part.new[key] = {"etag": changes.etag, "high_water": changes.high_water}
        if changes.items:
            part.changed = True
        return changes

    def _doc(self, folder: str, n: int) -> dict[str, Any]:
        found = self.store.read("repos", self.name, folder, f"{n}.json")
        return found if isinstance(found, dict) else {}

    def _put(self, part: Part, folder: str, n: int, doc: dict[str, Any]) -> None:
        if self.store.write(doc, "repos", self.name, folder, f"{n}.json"):
            part.wrote("repos", self.name, folder, f"{n}.json")

    # issues and their comments

    def _issues(self, part: Part) -> None:
        issues = self._changes(
            part, "list", "/issues", {"state": "all"} | _NEWEST_FIRST, has_since=True
        )
        for index, item in enumerate(issues.items or []):
            n = number(item)
            if n is None:
                part.skip(f"{_at(self.api_path + '/issues', index)} has no number")
                continue
            self._put(
                part,
                "issues",
                n,
                {"issue": item} | {"comments": self._doc("issues", n).get("comments", [])},
            )
        self._conversations(part)

    def _conversations(self, part: Part) -> None:
        """Every issue comment changed since the last run, a pull request's among them."""
        comments = self._changes(
            part, "comments", "/issues/comments", _NEWEST_FIRST, has_since=True
        )
        self._merge(
            part,
            "issues",
            "comments",
            "issue_url",
            comments.items or [],
            "issue",
            "/issues/comments",
        )

    def _merge(
        self,
        part: Part,
        folder: str,
        field: str,
        url_key: str,
        items: list[Any],
        head: str,
        path: str,
    ) -> None:
        """Merge changed comments into the documents of the items their ``url_key`` names."""
        grouped: dict[int, list[Any]] = {}
        for index, item in enumerate(items):
            n = number_in(item, url_key)
            if n is None or number(item, "id") is None:
                part.skip(f"{_at(self.api_path + path, index)} has no id or {url_key}")
                continue
            grouped.setdefault(n, []).append(item)
        for n, changed in sorted(grouped.items()):
            doc = self._doc(folder, n)
            old = doc.get(field)
            doc = (
                {head: doc.get(head)}
                | doc
                | {field: _by_id(old if isinstance(old, list) else [], changed)}
            )
            self._put(part, folder, n, doc)

    # pull requests, their reviews and review comments

    def _pulls(self, part: Part) -> None:
        pulls = self._changes(
            part, "list", "/pulls", {"state": "all"} | _NEWEST_FIRST, has_since=False
        )
        for index, item in enumerate(pulls.items or []):
            n = number(item)
            if n is None:
                part.skip(f"{_at(self.api_path + '/pulls', index)} has no number")
                continue
            reviews = self.reader.read_list(f"{self.api_path}/pulls/{n}/reviews", {}).items or []
            doc = self._doc("pulls", n)
            kept = doc.get("review_comments")
            self._put(
                part,
                "pulls",
                n,
                {
                    "pull": item,
                    "reviews": reviews,
                    "review_comments": kept if isinstance(kept, list) else [],
                },
            )
        comments = self._changes(part, "comments", "/pulls/comments", _NEWEST_FIRST, has_since=True)
        self._merge(
            part,
            "pulls",
            "review_comments",
            "pull_request_url",
            comments.items or [],
            "pull",
            "/pulls/comments",
        )

    # releases and their assets

    def _releases(self, part: Part, held: dict[str, Any]) -> None:
        releases = self.runner.list_document(
            part, f"{self.api_path}/releases", {}, ("repos", self.name, "releases"), write=False
        )
        listed = releases is not None  # else unchanged (304): retry from the stored ones
        if releases is None:
            if part.old.get("retry") is not True:
                return
            releases = self._stored_releases()
        kept: set[str] = set()
        assets: list[dict[str, Any]] = []
        failures = 0
        for index, release in enumerate(releases):
            ident = number(release, "id")
            if ident is None:
                part.skip(f"{_at(self.api_path + '/releases', index)} has no id")
                continue
            kept.add(str(ident))
            self._put(part, "releases", ident, release)
            entries = release.get("assets") or []
            if not isinstance(entries, list):
                self.runner.failed(self.full_name, "assets", f"release {ident}: assets not a list")
                failures += 1
                continue
            for entry in entries:
                asset = Asset.from_api(entry)
                if isinstance(asset, str):
                    self.runner.failed(self.full_name, "assets", f"release {ident}: {asset}")
                    failures += 1
                    continue
                sha256 = self._asset(asset, held)
                if sha256 is None:
                    failures += 1
                    continue
                assets.append(
                    {
                        "id": asset.id,
                        "release_id": ident,
                        "name": asset.name,
                        "size": asset.size,
                        "sha256": sha256,
                    }
                )
        if part.skipped:  # a release without an id may be any stored one: keep them all
            return
        if listed:
            for name in self.store.names("repos", self.name, "releases"):
                if name not in kept:
                    self.store.remove("repos", self.name, "releases", f"{name}.json")
                    part.wrote("repos", self.name, "releases", f"{name}.json")
        assets.sort(key=lambda a: (a["release_id"], a["id"]))
        if self.store.write(assets, "repos", self.name, "assets.json"):
            part.wrote("repos", self.name, "assets.json")
        if failures:  # the next run retries the failed assets, even if the list is unchanged
            part.new["retry"] = True

    def _stored_releases(self) -> list[Any]:
        found = (
            self.store.read("repos", self.name, "releases", f"{name}.json")
            for name in self.store.names("repos", self.name, "releases")
        )
        return [release for release in found if isinstance(release, dict)]

    def _asset(self, asset: Asset, held: dict[str, Any]) -> str | None:
        """The sha256 of the file holding ``asset``: already held, or downloaded now."""
        tally = self.runner.tally
        known = held.get(str(asset.id))
        if isinstance(known, dict):
            sha = known.get("sha256")
            same = known.get("size") == asset.size and known.get("updated_at") == asset.updated_at
            if (
                isinstance(sha, str)
                and same
                and (asset.sha256 in (None, sha))
                and self.store.has_asset(sha, asset.size)
            ):
                tally.assets_held += 1
                return sha
        if asset.sha256 is not None and self.store.has_asset(asset.sha256, asset.size):
            tally.assets_held += 1
            held[str(asset.id)] = {
                "sha256": asset.sha256,
                "size": asset.size,
                "updated_at": asset.updated_at,
            }
            return asset.sha256
        try:
            location = self.reader.client.get_redirect(
                f"{self.api_path}/releases/assets/{asset.id}", OCTET_STREAM
            )
            sha = self.downloader.fetch(location, asset, self.store.assets)
        except DiscoveryStopped:
            raise  # a stop, not this asset's failure
        except (AssetMismatch, BackupError) as exc:
            tally.assets_failed += 1
            self.runner.failed(
                self.full_name, "assets", f"asset {asset.id} ({asset.name!r}): {exc}"
            )
            return None
        tally.assets += 1
        tally.asset_bytes += asset.size
        held[str(asset.id)] = {"sha256": sha, "size": asset.size, "updated_at": asset.updated_at}
        log.info("asset_downloaded", repository=self.full_name, asset=asset.name, size=asset.size)
        return sha

    # labels and milestones

    def _labels(self, part: Part) -> None:
        self.runner.list_document(
            part, f"{self.api_path}/labels", {}, ("repos", self.name, "labels.json")
        )

    def _milestones(self, part: Part) -> None:
        self.runner.list_document(
            part,
            f"{self.api_path}/milestones",
            {"state": "all"},
            ("repos", self.name, "milestones.json"),
        )
