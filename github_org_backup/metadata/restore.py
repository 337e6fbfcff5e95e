"""A restore's view of the metadata store: one repository as one run left it, and its releases.

    --from DIR -> the store (DEST/OWNER/metadata) -> one commit: HEAD, or --as-of REV or TIME
              -> repos/REPO as that commit holds it (git archive, into a temporary folder)
              -> release plans: each release's fields, its assets' files, checked by sha256
              -> issues in the replay form (metadata.replay)

Nothing here talks to GitHub: commands.restore_metadata sends what these build.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from github_org_backup.base.listing import listing
from github_org_backup.errors import MetadataStoreError, UsageError
from github_org_backup.metadata.store import STORE_DIR, MetadataStore

_TIME = re.compile(r"\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1024 * 1024
RELEASE_FIELDS = ("tag_name", "target_commitish", "name", "body", "draft", "prerelease")


@dataclass(frozen=True)
class Revision:
    """The commit of the store a restore reads: one run's state."""

    commit: str
    committed_at: str
    subject: str


def open_store(path: Path) -> MetadataStore:
    """The store at DEST/OWNER/metadata (or below DEST/OWNER); a usage error otherwise."""
    path = path.expanduser()
    for root in (path, path / STORE_DIR):
        if root.name == STORE_DIR and (root / ".git").is_dir():
            return MetadataStore(root.parent)
    hint = "give DEST/OWNER/metadata, the store repos --metadata writes beside the mirrors"
    if not path.is_dir():
        raise UsageError(f"--from {path}: no such directory: {hint}")
    raise UsageError(f"--from {path} is not a metadata store (no metadata/.git): {hint}")


def _git(store: MetadataStore, *args: str) -> str | None:
    done = store.git(*args)
    return done.stdout if done.returncode == 0 else None


def revision(store: MetadataStore, as_of: str | None) -> Revision:
    """HEAD, the commit ``as_of`` names, or the last commit at or before the time it gives."""
    log = f"git -C {store.root} log --format='%h %cI %s' lists the runs"
    if as_of is not None and as_of.startswith("-"):
        raise UsageError(f"--as-of {as_of!r} is neither a commit nor a time: {log}")
    spec = as_of or "HEAD"
    if as_of is not None and _TIME.fullmatch(as_of.strip()):
        when = _moment(as_of.strip())
        found = _git(store, "rev-list", "-1", f"--before={int(when.timestamp())}", "HEAD")
        if not found or not found.strip():
            raise UsageError(f"--as-of {as_of}: the store has no run at or before it: {log}")
        spec = found.strip()
    commit = _git(store, "rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}")
    if not commit:
        if as_of is None:
            raise UsageError(f"the store {store.root} has no run committed yet")
        raise UsageError(f"--as-of {as_of}: no such commit in the store {store.root}: {log}")
    shown = _git(store, "show", "-s", "--format=%H%n%cI%n%s", commit.strip()) or ""
    full, committed, subject = [*shown.splitlines(), "", "", ""][:3]
    return Revision(full or commit.strip(), _utc(committed), subject)


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--as-of {text!r} is not a time such as 2026-11-29T03:00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _utc(text: str) -> str:
    try:
        return datetime.fromisoformat(text).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return text


def extract(store: MetadataStore, commit: str, repo: str, into: Path) -> Path:
    """repos/REPO as ``commit`` holds it, written below ``into``: the folder."""
    names = [
        line.removeprefix("repos/")
        for line in (_git(store, "ls-tree", "--name-only", commit, "repos/") or "").splitlines()
    ]
    if repo not in names:
        held = f"it holds {listing(names)}" if names else "it holds no repository"
        raise UsageError(
            f"--repo {repo}: the store {store.root} has no repository of that name at "
            f"{commit[:12]} ({held}); names are as the owner's mirrors are, without .git"
        )
    archive = into / "tree.tar"
    done = store.git("archive", "--format=tar", "-o", str(archive), commit, "--", f"repos/{repo}")
    if done.returncode != 0:
        said = " ".join(done.stderr.split())[:300]
        raise MetadataStoreError(f"git archive of {repo} at {commit[:12]} failed: {said}")
    with tarfile.open(archive) as tar:
        tar.extractall(into / "tree", filter="data")
    archive.unlink()
    return into / "tree" / "repos" / repo


class RepoTree:
    """One repository's documents as extracted: issues, pulls, releases, assets.json."""

    def __init__(self, folder: Path, repository: str) -> None:
        self.folder = folder
        self.repository = repository  # OWNER/REPO it was backed up from
        self.unreadable: list[str] = []  # documents that are not JSON, skipped

    def read(self, *parts: str) -> Any:
        path = self.folder.joinpath(*parts)
        try:
            return json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except ValueError:
            self.unreadable.append("/".join(parts))
            return None

    def documents(self, folder: str) -> Iterator[tuple[int, Any]]:
        """(number, document) of each ``N.json`` in ``folder``, by number."""
        found = self.folder / folder
        numbers = sorted(int(p.stem) for p in found.glob("*.json") if p.stem.isdigit())
        for n in numbers:
            doc = self.read(folder, f"{n}.json")
            if doc is not None:
                yield n, doc


# Releases


@dataclass(frozen=True)
class AssetFile:
    """A release asset to upload: its name and label, and the store's file of its bytes."""

    id: int
    name: str
    label: str | None
    content_type: str
    size: int
    sha256: str | None  # None: the backup holds no bytes for it
    path: Path | None


@dataclass(frozen=True)
class ReleasePlan:
    id: int
    tag: str
    fields: dict[str, Any]  # what POST /repos/{owner}/{repo}/releases takes
    assets: tuple[AssetFile, ...]


def release_plans(tree: RepoTree, assets_dir: Path) -> list[ReleasePlan]:
    """Every release of the tree, oldest first, with its assets and where their bytes are."""
    held: dict[int, dict[str, Any]] = {}
    for entry in tree.read("assets.json") or []:
        if isinstance(entry, dict) and isinstance(entry.get("id"), int):
            held[entry["id"]] = entry
    plans: list[tuple[str, int, ReleasePlan]] = []
    for ident, release in tree.documents("releases"):
        tag = release.get("tag_name") if isinstance(release, dict) else None
        if not isinstance(tag, str) or not tag:
            tree.unreadable.append(f"releases/{ident}.json")
            continue
        fields = {k: release[k] for k in RELEASE_FIELDS if release.get(k) is not None}
        assets = tuple(_asset(item, held, assets_dir) for item in release.get("assets") or [])
        created = release.get("created_at")
        plan = ReleasePlan(ident, tag, fields, tuple(a for a in assets if a is not None))
        plans.append((created if isinstance(created, str) else "", ident, plan))
    return [plan for _, _, plan in sorted(plans, key=lambda p: (p[0], p[1]))]


def _asset(item: Any, held: dict[int, dict[str, Any]], assets_dir: Path) -> AssetFile | None:
    if not isinstance(item, dict) or not isinstance(item.get("id"), int):
        return None
    ident, size = item["id"], item.get("size")
    name = item.get("name")
    entry = held.get(ident) or {}
    found = entry.get("sha256")
    sha = found if isinstance(found, str) and _SHA256.fullmatch(found) else None
    label, kind = item.get("label"), item.get("content_type")
    return AssetFile(
        ident,
        name if isinstance(name, str) and name else str(ident),
        label if isinstance(label, str) and label else None,
        kind if isinstance(kind, str) and kind else "application/octet-stream",
        size if isinstance(size, int) else int(entry.get("size") or 0),
        sha,
        None if sha is None else assets_dir / sha,
    )


def asset_problem(asset: AssetFile) -> str | None:
    """Why ``asset`` cannot be uploaded as backed up (its file missing or changed), or None."""
    if asset.sha256 is None or asset.path is None:
        return (
            f"asset {asset.name!r} has no bytes in the backup (assets.json does not name it: "
            "its download failed); run repos --metadata again, or leave the release out"
        )
    try:
        size = asset.path.stat().st_size
        if size != asset.size:
            return f"asset {asset.name!r}: {asset.path} has {size} bytes, not {asset.size}"
        digest = hashlib.sha256()
        with asset.path.open("rb") as file:
            while chunk := file.read(_CHUNK):
                digest.update(chunk)
    except FileNotFoundError:
        return f"asset {asset.name!r}: its file {asset.path} is missing from the backup"
    except OSError as exc:
        return f"asset {asset.name!r}: cannot read {asset.path}: {exc.strerror}"
    if digest.hexdigest() != asset.sha256:
        return (
            f"asset {asset.name!r}: {asset.path} has sha256 {digest.hexdigest()}, not the "
            "sha256 it was backed up with: the file has changed since"
        )
    return None
