"""The listings a run refuses before any fetch: a clone URL elsewhere, a second spelling of
one folder, or a whole listing on another host (a GitHub Enterprise Server under another name).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from github_org_backup.errors import ApiHostMismatch
from github_org_backup.output.repos_report import RepoOutcome
from github_org_backup.repos.mirror import ReposConfig, Target

if TYPE_CHECKING:
    from github_org_backup.github.repos import Repo


def one_per_folder(targets: list[Target]) -> tuple[list[Target], list[RepoOutcome]]:
    """Targets with folders of their own; a wiki whose folder a repository named REPO.wiki
    takes (or a second spelling of one folder) fails, named, instead of sharing it."""
    taken: dict[str, str] = {}
    kept, clashes = [], []
    for target in sorted(targets, key=lambda t: t.kind != "repository"):
        folder = str(target.path).lower()
        if folder in taken:
            error = f"its mirror folder {target.path.name} is taken by {taken[folder]}"
            clashes.append(RepoOutcome(target.name, "", target.kind, "failed", error=error))
        else:
            taken[folder] = target.name
            kept.append(target)
    return kept, clashes


def screened(repos: list[Repo], config: ReposConfig) -> tuple[list[RepoOutcome], list[Repo]]:
    """The listings refused (each its own failure, with the reason) and the ones to mirror.

    When every clone URL names one same other host, the API is most likely a GitHub Enterprise
    Server known by another name: a configuration error naming both hosts, before any fetch.
    """
    refuse_one_foreign_host(repos, config)
    refused, kept, folders = [], [], set()
    for repo in repos:
        problem = repo.problem(config.owner.name, config.git_host)
        folder = f"{repo.owner}/{repo.name}".lower()
        if problem is None and folder in folders:
            problem = f"listed twice (as {repo.full_name}): one mirror folder, the first kept"
        if problem:
            refused.append(RepoOutcome(repo.full_name, "", "repository", "failed", error=problem))
        else:
            folders.add(folder)
            kept.append(repo)
    return refused, kept


def _hostname(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:  # not a URL at all: git.py refuses it, naming why
        return ""


def refuse_one_foreign_host(repos: list[Repo], config: ReposConfig) -> None:
    host = config.git_host
    usable = [r for r in repos if not r.unusable]
    named = {_hostname(r.clone_url) for r in usable}
    # One repository alone pointing elsewhere is that repository's failure, not a setting.
    if (
        len(usable) > 1
        and len(named) == 1
        and "" not in named
        and not any(host.allows(r.clone_url) for r in usable)
    ):
        (other,) = named
        raise ApiHostMismatch(
            f"every repository the GitHub API at {config.api_url} lists has its clone URL on "
            f"{other or '(no host)'}, not on {host.hostname}: if {other} is the same GitHub "
            "Enterprise Server under another name, set --github-api-url / GITHUB_API_URL to "
            f"its API there (e.g. https://{other}/api/v3); nothing was fetched, and no token was "
            f"sent to {other}"
        )
