"""The git subprocess layer: bare mirrors that never lose a commit the source drops.

Every git runs with ``asyncio.create_subprocess_exec`` in its own process group. The token
travels only in the environment, as an ``http.<origin>/.extraHeader`` set through
``GIT_CONFIG_COUNT``: never in argv, in a config file, or in the mirror (its remote URL is the
token-free clone URL). git-lfs reads the same setting. The header is added only for a URL on
the git host that belongs to the GitHub API the user named (``GitHost``), and git follows no
redirect, so a hostile listing or server cannot send the token elsewhere.

A token that expires (a GitHub App's installation token) comes from ``GitSettings.token_source``,
asked before each git run, so every run sends the current one; what git prints is redacted of
every token issued so far.

Bounds: curl's low-speed limit (``http.lowSpeedLimit`` bytes/s for ``http.lowSpeedTime``,
which is --read-timeout) ends each HTTP transfer that trickles, and a deadline per repository
(--repo-timeout) ends a fetch that keeps moving but never finishes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from github_org_backup.errors import (
    BackupError,
    GitError,
    GitMissing,
    GitTimeout,
    RepositoryNotFound,
)
from github_org_backup.repos.gitenv import LOW_SPEED_LIMIT_BPS as LOW_SPEED_LIMIT_BPS
from github_org_backup.repos.gitenv import GitSettings as GitSettings
from github_org_backup.repos.gitenv import git_environment
from github_org_backup.repos.refs import (
    BACKUP,
    INCOMING,
    ChangeKind,
    RefChange,
    branch_name,
    kept_clear_of,
    transactions,
    worth_keeping,
)

log = structlog.get_logger("github_org_backup.repos.git")


@dataclass(frozen=True)
class MirrorResult:
    created: bool
    changes: tuple[RefChange, ...]
    lfs_objects: int | None = None


class Git:
    """Runs git with credentials held in its environment; can kill everything it started."""

    def __init__(self, settings: GitSettings, executable: str | None = None) -> None:
        found = executable or shutil.which("git")
        if not found:
            raise GitMissing(
                "git is not installed: install Debian's git package (apt-get install git)"
            )
        self.executable = found
        self.settings = settings
        self._running: set[asyncio.subprocess.Process] = set()
        self._given: list[str] = [settings.token] if settings.token else []  # tokens git got

    def current_token(self) -> str | None:
        """The token for the next git run: ``token_source``'s answer (which may block while
        a new token is bought), else ``token``. A failure to get one is a ``GitError``."""
        source = self.settings.token_source
        if source is None:
            return self.settings.token
        try:
            token = source()
        except BackupError as exc:
            raise GitError(f"no GitHub token for git: {exc}") from None
        if token and token not in self._given:
            self._given.append(token)
        return token or None

    def _secret_strings(self) -> list[str]:
        """Every form in which a secret could show in git's output; computed at each use, as
        a renewed token joins the list."""
        tokens = list(self._given)
        if self.settings.secrets_source is not None:
            tokens += [t for t in self.settings.secrets_source() if t and t not in tokens]
        found = []
        for token in tokens:
            found += [token, self._basic(token), base64.b64encode(token.encode()).decode()]
        # Longest first: a token inside a longer secret (the key) never leaves a piece behind.
        return sorted(set(found), key=len, reverse=True)

    def _basic(self, token: str) -> str:
        pair = f"{self.settings.username}:{token}".encode()
        return base64.b64encode(pair).decode()

    def environment(self, url: str | None, token: str | None = None) -> dict[str, str]:
        """The environment of a git run against ``url``: config entries, no prompts. The
        token is ``token`` if given, else the current one (``current_token``)."""
        host = self.settings.token_host
        if url and self.settings.has_token and (host is None or host.allows(url)):
            token = token or self.current_token()
        else:
            token = None
        basic = self._basic(token) if url and token else None
        return git_environment(self.settings, url, basic)

    def redact(self, text: str) -> str:
        for secret in self._secret_strings():
            text = text.replace(secret, "<redacted>")
        return text

    async def _token_for(self, url: str | None) -> str | None:
        """The token a run against ``url`` sends, asked off the event loop when it may have to
        be bought (the other runs go on meanwhile)."""
        host = self.settings.token_host
        if not url or not self.settings.has_token or (host is not None and not host.allows(url)):
            return None
        if self.settings.token_source is None:
            return self.settings.token
        return await asyncio.to_thread(self.current_token)

    async def run(
        self,
        *args: str,
        git_dir: Path | None = None,
        url: str | None = None,
        stdin: bytes | None = None,
        ok: Sequence[int] = (0,),
        timeout_s: float | None = None,
    ) -> tuple[int, str]:
        """Run ``git ARGS``; (exit status, stdout). Raises GitError outside ``ok``."""
        argv = [self.executable, *(["--git-dir", str(git_dir)] if git_dir else []), *args]
        env = self.environment(url, await self._token_for(url))
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,  # its own process group: abort() reaches git's helpers too
        )
        self._running.add(process)
        try:
            if timeout_s is None:
                out, err = await process.communicate(stdin)
            else:
                out, err = await asyncio.wait_for(process.communicate(stdin), timeout_s)
        except TimeoutError:
            _kill(process)
            await process.wait()
            raise GitTimeout(f"git {args[0]}: killed after {timeout_s:.0f} s") from None
        except asyncio.CancelledError:
            _kill(process)
            await process.wait()
            raise
        finally:
            self._running.discard(process)
        code = process.returncode
        assert code is not None
        if code not in ok:
            raise _failure(args[0], self.redact(err.decode(errors="replace")), code)
        return code, out.decode(errors="replace")

    def kill_all(self) -> None:
        """Stop every git still running (its process group: remote helpers, index-pack)."""
        for process in list(self._running):
            _kill(process)

    # Mirrors

    async def mirror(
        self,
        url: str,
        path: Path,
        *,
        pull_refs: bool,
        stamp: str,
        default_branch: str | None = None,
        deadline: float | None = None,
    ) -> MirrorResult:
        """Create or bring up to date the bare mirror of ``url`` at ``path``.

        ``deadline`` (``time.monotonic()``) bounds the fetch; local steps are never killed.
        """
        created = not (path / "HEAD").is_file()
        work = path.with_name(f".{path.name}.partial") if created else path
        if created:
            shutil.rmtree(work, ignore_errors=True)
            work.parent.mkdir(parents=True, exist_ok=True)
            await self.run("init", "--quiet", "--bare", str(work))
        try:
            await self._set_remote(work, url)
            changes = await self._fetch_and_apply(
                work, url, pull_refs=pull_refs, stamp=stamp, deadline=deadline
            )
            if default_branch and branch_name(default_branch):
                # A listing's default_branch is source input: HEAD only ever names a branch.
                await self.run("symbolic-ref", "HEAD", f"refs/heads/{default_branch}", git_dir=work)
            if created:
                os.replace(work, path)
        except BaseException:
            if created:
                shutil.rmtree(work, ignore_errors=True)
            raise
        if changes and not created:
            # Old tips are referenced by now, so a gc can no longer drop them.
            await self.run("gc", "--auto", "--quiet", git_dir=path)
        return MirrorResult(created, tuple(changes))

    async def _set_remote(self, git_dir: Path, url: str) -> None:
        _code, current = await self.run(
            "config", "--get", "remote.origin.url", git_dir=git_dir, ok=(0, 1)
        )
        if current.strip() != url:
            await self.run("config", "remote.origin.url", url, git_dir=git_dir)

    async def _fetch_and_apply(
        self, git_dir: Path, url: str, *, pull_refs: bool, stamp: str, deadline: float | None
    ) -> list[RefChange]:
        namespaces = ["heads", "tags"] + (["pull"] if pull_refs else [])
        refspecs = [f"+refs/{n}/*:{INCOMING}{n}/*" for n in namespaces]
        await self.run(
            "fetch",
            "--quiet",
            "--no-tags",
            "--prune",
            "--no-auto-gc",
            "--no-write-fetch-head",
            "--no-recurse-submodules",
            "origin",
            *refspecs,
            git_dir=git_dir,
            url=url,
            timeout_s=_remaining(deadline),
        )
        refs = await self.refs(
            git_dir, ["refs/" + n + "/" for n in namespaces] + [INCOMING, BACKUP]
        )
        incoming = {
            "refs/" + ref.removeprefix(INCOMING): sha
            for ref, sha in refs.items()
            if ref.startswith(INCOMING)
        }
        current = {ref: sha for ref, sha in refs.items() if not ref.startswith((INCOMING, BACKUP))}
        changes = await self._classify(git_dir, current, incoming, stamp)
        changes = kept_clear_of([ref for ref in refs if ref.startswith(BACKUP)], changes, stamp)
        fetched = [f"delete {ref} {sha}" for ref, sha in refs.items() if ref.startswith(INCOMING)]
        for commands in transactions(changes, fetched):
            await self.run(
                "update-ref", "--stdin", git_dir=git_dir, stdin="\n".join([*commands, ""]).encode()
            )
        return changes

    async def _classify(
        self, git_dir: Path, current: Mapping[str, str], incoming: Mapping[str, str], stamp: str
    ) -> list[RefChange]:
        changes = []
        for ref in sorted(current.keys() | incoming.keys()):
            old, new = current.get(ref), incoming.get(ref)
            if old == new:
                continue
            if old is None:
                changes.append(RefChange(ref, None, new, "created"))
                continue
            keep = worth_keeping(ref)
            if new is None:
                kind: ChangeKind = "deleted"
            elif ref.startswith("refs/tags/") or not keep:
                kind = "forced"
            else:
                code, _ = await self.run(
                    "merge-base", "--is-ancestor", old, new, git_dir=git_dir, ok=(0, 1)
                )
                kind = "fast-forward" if code == 0 else "forced"
            kept = (
                f"{BACKUP}{stamp}/{ref.removeprefix('refs/')}"
                if keep and kind != "fast-forward"
                else None
            )
            changes.append(RefChange(ref, old, new, kind, kept))
        return changes

    async def refs(self, git_dir: Path, prefixes: Sequence[str]) -> dict[str, str]:
        _, out = await self.run(
            "for-each-ref", "--format=%(objectname) %(refname)", *prefixes, git_dir=git_dir
        )
        return {ref: sha for sha, _, ref in (line.partition(" ") for line in out.splitlines())}

    async def remote_refs(
        self, url: str, prefixes: Sequence[str], timeout_s: float | None = None
    ) -> dict[str, str]:
        """The source's refs below ``prefixes``, from ``git ls-remote``."""
        _, out = await self.run(
            "ls-remote", url, *[p + "*" for p in prefixes], url=url, timeout_s=timeout_s
        )
        found = {}
        for line in out.splitlines():
            sha, _, ref = line.partition("\t")
            if not ref.endswith("^{}"):
                found[ref] = sha
        return found

    async def fetch_lfs(self, git_dir: Path, url: str, deadline: float | None = None) -> int:
        """Fetch every Git LFS object any ref of the mirror points to; the count kept locally."""
        await self.run(
            "lfs",
            "fetch",
            "--all",
            "origin",
            git_dir=git_dir,
            url=url,
            timeout_s=_remaining(deadline),
        )
        objects = git_dir / "lfs" / "objects"
        return sum(1 for p in objects.rglob("*") if p.is_file()) if objects.is_dir() else 0

    async def fsck(self, git_dir: Path, *, deep: bool) -> list[str]:
        """Problems ``git fsck`` finds (``--connectivity-only`` unless deep); [] when sound."""
        args = ["fsck", "--no-progress", "--no-dangling"] + (
            [] if deep else ["--connectivity-only"]
        )
        try:
            await self.run(*args, git_dir=git_dir)
        except GitError as exc:
            return [str(exc)]
        problems = []
        if deep and (git_dir / "lfs" / "objects").is_dir():
            try:
                await self.run("lfs", "fsck", "--objects", git_dir=git_dir)
            except GitError as exc:
                problems.append(str(exc))
        return problems


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.01, deadline - time.monotonic())


def _kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def _failure(command: str, stderr: str, code: int) -> GitError:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    message = "; ".join(lines[-3:]) or f"exit status {code}"
    # git-lfs says "Repository or object not found" of a missing object, too.
    if command != "lfs" and "not found" in message and "epository" in message:
        return RepositoryNotFound(f"git {command}: {message}")
    if "could not read Username" in message or "Authentication failed" in message:
        message += (
            " (the server refused the token: check GITHUB_TOKEN and its repo scope, or the "
            "GitHub App's Contents: read permission and its access to this repository)"
        )
    return GitError(f"git {command}: {message}")


__all__ = ["LOW_SPEED_LIMIT_BPS", "Git", "GitSettings", "MirrorResult", "RefChange"]
