"""The metadata store: GitHub's JSON as files in a git repository of its own, one commit a run.

    DEST/OWNER/metadata/            a git work tree, readable with jq
      org/...                       the organisation's configuration
      repos/REPO/...                one folder per mirrored repository
      .git/github-org-backup/state.json   ETags, high-water marks, assets held (never committed)
    DEST/OWNER/assets/sha256/HEX    each release asset's bytes, kept by digest, never deleted

Every run commits what changed, so an edited body, a deleted release or a removed team member
stays recoverable with ``git log`` and ``git show REV:PATH``. Paths are built here from names
the repository listing already checked and from GitHub's numeric ids, never from other text
the source sends.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from github_org_backup.base import jsonio
from github_org_backup.base.files import atomic_write
from github_org_backup.errors import MetadataStoreError

STORE_DIR = "metadata"
ASSETS_DIR = "assets"
STATE_FILE = "github-org-backup/state.json"
_PART = re.compile(r"[A-Za-z0-9_.-]{1,100}")
_AUTHOR = ("-c", "user.name=github-org-backup", "-c", "user.email=github-org-backup@localhost")
# What a user's own git configuration must not change here: hooks, signing, filters.
_SAFE = (
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "core.autocrlf=false",
)
_MAX_STATE_VALUES = 50_000_000


def _checked(parts: tuple[str, ...]) -> tuple[str, ...]:
    for part in parts:
        # git ignores any folder named .git in a work tree (.github is a common repository).
        if not _PART.fullmatch(part) or part in (".", "..") or part.lower() == ".git":
            raise MetadataStoreError(f"refused to write {'/'.join(parts)!r}: not a store path")
    return parts


def _git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return env | {"GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"}


def _feed(pipe: IO[bytes], data: bytes) -> None:
    try:
        pipe.write(data)
        pipe.close()
    except (BrokenPipeError, ValueError):  # git was stopped: nothing more to ask
        pass


def document(data: Any) -> bytes:
    """A JSON document as the store keeps it: GitHub's keys in GitHub's order, indented, so
    that git's diffs show what changed."""
    # surrogatepass: a lone surrogate (a cut emoji) is valid JSON text, kept as it came.
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8", "surrogatepass")


class MetadataStore:
    """The JSON tree of one owner and its git history."""

    def __init__(self, owner_dir: Path, git: str | None = None) -> None:
        self.root = owner_dir / STORE_DIR
        self.assets = owner_dir / ASSETS_DIR / "sha256"
        found = git or shutil.which("git")
        if not found:
            raise MetadataStoreError("git is not installed: install Debian's git package")
        self._git = found
        self.written = 0
        self.removed = 0

    # git

    def git(self, *args: str) -> subprocess.CompletedProcess[str]:
        """git in the store, without the user's system config, hooks or signing."""
        return subprocess.run(
            [self._git, "-C", str(self.root), *_SAFE, *args],
            env=_git_env(),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    def committed(self) -> Iterator[tuple[str, bytes]]:
        """Every document of the last commit with its bytes, read by one ``git cat-file``."""
        listed = self._run("ls-tree", "-r", "-z", "HEAD")
        blobs = []
        for line in filter(None, listed.split("\0")):
            meta, _, path = line.partition("\t")
            _mode, kind, oid = meta.split()
            if kind == "blob":
                blobs.append((oid, path))
        with subprocess.Popen(
            [self._git, "-C", str(self.root), *_SAFE, "cat-file", "--batch"],
            env=_git_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        ) as cat:
            assert cat.stdin is not None and cat.stdout is not None
            # Object ids only, written from a thread: a path never needs quoting, and git's
            # answers are read while the questions are still being written.
            asked = "".join(f"{oid}\n" for oid, _ in blobs).encode()
            feeder = threading.Thread(target=_feed, args=(cat.stdin, asked), daemon=True)
            feeder.start()
            try:
                for oid, path in blobs:
                    header = cat.stdout.readline().split()
                    if len(header) != 3 or header[0].decode() != oid or not header[2].isdigit():
                        raise MetadataStoreError(f"git cat-file in {self.root} lost {path}")
                    body = cat.stdout.read(int(header[2]))
                    cat.stdout.read(1)  # the newline after each object
                    yield path, body
            finally:
                cat.kill()
                feeder.join(timeout=10)

    def _run(self, *args: str) -> str:
        try:
            done = self.git(*args)
        except subprocess.TimeoutExpired:
            raise MetadataStoreError(f"git {args[0]} in {self.root} took over 600 s") from None
        if done.returncode != 0:
            said = " ".join(done.stderr.split())[:300]
            raise MetadataStoreError(f"git {args[0]} in {self.root} failed: {said}")
        return done.stdout

    def open(self) -> None:
        """Create the store on its first run; refuse a folder that is not one."""
        if not self.root.exists():
            self.root.mkdir(parents=True)
            self._run("init", "--quiet", "--initial-branch=main")
        elif not (self.root / ".git").is_dir():
            raise MetadataStoreError(
                f"{self.root} exists and is not a metadata store (no .git): move it away"
            )
        (self.root / ".git" / "github-org-backup").mkdir(exist_ok=True)
        self.assets.mkdir(parents=True, exist_ok=True)

    def commit(self, message: str) -> str | None:
        """Commit every change of the run; the new commit's id, or None if nothing changed."""
        self._run("add", "--all", ".")
        if not self._run("status", "--porcelain"):
            return None
        self._run(*_AUTHOR, "commit", "--quiet", "--no-verify", "-m", message)
        return self._run("rev-parse", "HEAD").strip()

    # documents

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*_checked(parts))

    def read(self, *parts: str) -> Any:
        """A stored document, or None if there is none (or it is not JSON)."""
        try:
            return json.loads(self.path(*parts).read_bytes())
        except (FileNotFoundError, ValueError):
            return None

    def write(self, data: Any, *parts: str) -> bool:
        """Store ``data`` at ``parts``; whether the file changed."""
        path = self.path(*parts)
        body = document(data)
        try:
            if path.read_bytes() == body:
                return False
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(body)
        tmp.replace(path)
        self.written += 1
        return True

    def remove(self, *parts: str) -> None:
        """Take a document out of the tree; its history keeps it."""
        path = self.path(*parts)
        if path.exists():
            path.unlink()
            self.removed += 1

    def names(self, *parts: str) -> Iterator[str]:
        """The documents' names (without .json) in a folder of the tree."""
        folder = self.path(*parts)
        if folder.is_dir():
            yield from sorted(p.name[:-5] for p in folder.glob("*.json"))

    # state (outside the tree: never committed)

    def load_state(self) -> dict[str, Any]:
        try:
            state = jsonio.loads((self.root / ".git" / STATE_FILE).read_bytes(), _MAX_STATE_VALUES)
        except (OSError, ValueError):  # none yet, or unreadable: this run reads everything
            return {}
        return state if isinstance(state, dict) else {}

    def save_state(self, state: dict[str, Any]) -> None:
        atomic_write(self.root / ".git" / STATE_FILE, json.dumps(state).encode())

    # assets

    def asset_path(self, sha256: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise MetadataStoreError(f"{sha256!r} is not a sha256 digest")
        return self.assets / sha256

    def has_asset(self, sha256: str, size: int) -> bool:
        path = self.asset_path(sha256)
        return path.is_file() and path.stat().st_size == size
