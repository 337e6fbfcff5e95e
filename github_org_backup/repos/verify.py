"""`verify --repos`: `git fsck` every mirror below a directory and, with a token, compare
its refs with the source's (`git ls-remote`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from github_org_backup.errors import GitError, GitMissing, GitTimeout, UsageError
from github_org_backup.plan.policy import PackageFilter
from github_org_backup.repos.git import Git, GitSettings


@dataclass(frozen=True)
class MirrorCheck:
    """What to check: the mirrors below ``root`` that ``mirrors`` allows (named OWNER/REPO)."""

    root: Path
    mirrors: PackageFilter
    deep: bool
    concurrency: int
    git: GitSettings = field(repr=False)
    timeout_s: float = 300.0

    @property
    def compares(self) -> bool:
        """With a token, each mirror's refs are compared with the source's."""
        return self.git.token is not None


def mirrors_below(check: MirrorCheck) -> list[Path]:
    """The bare mirrors (DIR/OWNER/REPO.git) the check covers, sorted; one that lost its HEAD
    is still a mirror, and git fsck says what is wrong with it."""
    return [
        path
        for path in sorted(check.root.glob("*/*.git"))
        if path.is_dir()
        and not path.name.startswith(".")
        and check.mirrors.allows(str(path.relative_to(check.root)).removesuffix(".git"))
    ]


async def check_mirrors(check: MirrorCheck, mirrors: list[Path]) -> list[str]:
    """Every problem of ``mirrors``, one line each, named by the mirror's OWNER/REPO.git."""
    try:
        git = Git(check.git)
    except GitMissing as exc:
        raise UsageError(str(exc)) from None
    slots = asyncio.Semaphore(check.concurrency)

    async def one(path: Path) -> list[str]:
        async with slots:
            name = str(path.relative_to(check.root))
            problems = [f"{name}: {p}" for p in await git.fsck(path, deep=check.deep)]
            if check.compares:
                problems += [f"{name}: {p}" for p in await _compare(git, path, check)]
            return problems

    found = await asyncio.gather(*(one(p) for p in mirrors))
    return [p for group in found for p in group]


async def _compare(git: Git, path: Path, check: MirrorCheck) -> list[str]:
    """Refs that differ between the mirror and its source (``git ls-remote``)."""
    timeout_s = check.timeout_s
    try:
        _, url = await git.run("config", "--get", "remote.origin.url", git_dir=path)
        url = url.strip()
        host = check.git.token_host
        refusal = host.refusal(url, f"/{path.parent.name}/{path.name}") if host else None
        if refusal:
            return [f"not compared with the source, and the token not sent: {refusal}"]
        local = await git.refs(path, ["refs/heads/", "refs/tags/", "refs/pull/"])
        prefixes = ["refs/heads/", "refs/tags/"]
        if any(r.startswith("refs/pull/") for r in local):
            prefixes.append("refs/pull/")
        remote = await git.remote_refs(url, prefixes, timeout_s=timeout_s)
    except GitTimeout:
        return [f"cannot compare with the source: no answer within {timeout_s:.0f} s"]
    except GitError as exc:
        return [f"cannot compare with the source: {exc}"]
    local = {r: s for r, s in local.items() if r.startswith(tuple(prefixes))}
    problems = []
    for ref in sorted(local.keys() | remote.keys()):
        mine, theirs = local.get(ref), remote.get(ref)
        if mine == theirs:
            continue
        if mine is None:
            problems.append(f"{ref} is at the source ({theirs}) but not in the mirror")
        elif theirs is None:
            problems.append(f"{ref} is in the mirror ({mine}) but no longer at the source")
        else:
            problems.append(f"{ref} is {theirs} at the source, {mine} in the mirror")
    return problems
