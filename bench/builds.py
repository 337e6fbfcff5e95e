"""The builds of github-org-backup a run compares: this checkout and, with --baseline REV,
a detached git worktree of REV, each run with PYTHONPATH (and working directory) at its root."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench.rig import CURRENT, ROOT, Build


def build_env(build: Build) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    return env | {"PYTHONPATH": str(build.root)}


def imported_from(build: Build) -> Path:
    """Where `import github_org_backup` finds the package when run as the bench runs it."""
    out = subprocess.run(
        [sys.executable, "-c", "import github_org_backup; print(github_org_backup.__file__)"],
        env=build_env(build),
        cwd=build.root,
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip()).resolve()


def verify(build: Build) -> Path:
    """The package's path, which must lie in the build's checkout (the venv's editable
    install of the main checkout must not win)."""
    path = imported_from(build)
    if not path.is_relative_to(build.root.resolve()):
        raise SystemExit(f"{build.name} imports github_org_backup from {path}, not {build.root}")
    return path


def _git(*arguments: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(ROOT), *arguments], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"git {' '.join(arguments)} failed: {out.stderr.strip()}")
    return out.stdout.strip()


def add_baseline(work: Path, revision: str) -> Build:
    short = _git("rev-parse", "--short=7", f"{revision}^{{commit}}")
    path = work / f"baseline-{short}"
    _git("worktree", "add", "--detach", str(path), short)
    build = Build(f"{CURRENT.name}@{short}", path)
    try:
        print(f"{build.name} runs from {verify(build)}", flush=True)
    except BaseException:
        remove_baseline(build)
        raise
    return build


def remove_baseline(build: Build) -> None:
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(build.root)],
        capture_output=True,
        check=False,
    )
    _git("worktree", "prune")


def build_version(build: Build) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "github_org_backup", "--version"],
        env=build_env(build),
        cwd=build.root,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = (out.stdout or out.stderr).strip().splitlines()
    commit = subprocess.run(
        ["git", "-C", str(build.root), "rev-parse", "--short=7", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    changed = subprocess.run(
        ["git", "-C", str(build.root), "status", "--porcelain", "--", "github_org_backup"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return (
        (lines[0] if lines else "unknown")
        + (f" at {commit}" if commit else "")
        + (" with uncommitted changes to github_org_backup/" if changed else "")
    )
