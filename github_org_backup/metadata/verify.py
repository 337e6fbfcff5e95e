"""`verify --repos` for the metadata stores: each OWNER/metadata below the directory.

Checks that the store's git repository is whole (``git fsck``), that its last run was
committed (a work tree with changes means a run stopped before its commit; the next run
commits them), that every committed document parses as JSON, and that every asset a
repository's ``assets.json`` names is held with its size, and with ``--deep`` its sha256.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from github_org_backup.errors import MetadataStoreError
from github_org_backup.metadata.store import ASSETS_DIR, STORE_DIR, MetadataStore

_CHUNK = 1024 * 1024


def stores_below(root: Path) -> list[Path]:
    """The metadata stores (DIR/OWNER/metadata with a .git) below ``root``, sorted."""
    return [p for p in sorted(root.glob(f"*/{STORE_DIR}")) if (p / ".git").is_dir()]


def check_store(path: Path, root: Path, *, deep: bool) -> list[str]:
    """Every problem of the store at ``path``, one line each, named by OWNER/metadata."""
    name = str(path.relative_to(root))
    store = MetadataStore(path.parent)
    problems: list[str] = []

    git = store.git
    fsck = git("fsck", "--no-progress", "--no-dangling")
    if fsck.returncode != 0:
        said = " ".join((fsck.stderr or fsck.stdout).split())[:300]
        return [f"{name}: git fsck failed: {said}"]
    if git("rev-parse", "--verify", "--quiet", "HEAD").returncode != 0:
        return [f"{name}: no commit yet (HEAD missing): run repos --metadata"]
    if git("status", "--porcelain").stdout.strip():
        problems.append(
            f"{name}: changes not committed (a run stopped before its commit; the next "
            "run commits them)"
        )
    try:
        for document, body in store.committed():
            try:
                parsed = json.loads(body)
            except ValueError:
                problems.append(f"{name}: {document} is not JSON")
                continue
            if document.endswith("/assets.json"):
                problems += _assets(store, name, parsed, document, deep)
    except MetadataStoreError as exc:
        problems.append(f"{name}: {exc}")
    return problems


def _assets(
    store: MetadataStore, name: str, entries: object, document: str, deep: bool
) -> list[str]:
    problems = []
    if not isinstance(entries, list):
        return [f"{name}: {document} is not a list"]
    for entry in entries:
        sha = entry.get("sha256") if isinstance(entry, dict) else None
        size = entry.get("size") if isinstance(entry, dict) else None
        if not isinstance(sha, str) or not isinstance(size, int):
            problems.append(f"{name}: {document} has an entry without sha256 and size")
            continue
        try:
            path = store.asset_path(sha)
        except MetadataStoreError:
            problems.append(f"{name}: {document} names {sha!r}, not a sha256")
            continue
        where = f"{ASSETS_DIR}/sha256/{sha}"
        if not path.is_file():
            problems.append(f"{name}: asset {entry.get('name')!r} is missing ({where})")
        elif path.stat().st_size != size:
            problems.append(f"{name}: asset {entry.get('name')!r} has the wrong size ({where})")
        elif deep and _sha256(path) != sha:
            problems.append(
                f"{name}: asset {entry.get('name')!r} does not match its sha256 ({where})"
            )
    return problems


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
