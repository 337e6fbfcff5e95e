"""The options builders of `repos` and `verify --repos`: git mirrors of an owner's
repositories, from flags and environment."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from github_org_backup.errors import UsageError
from github_org_backup.github.http import GitHubSettings
from github_org_backup.metadata.kinds import Selection
from github_org_backup.plan.policy import PackageFilter
from github_org_backup.repos.git import GitSettings
from github_org_backup.repos.host import GitHost
from github_org_backup.repos.mirror import ReposConfig
from github_org_backup.repos.verify import MirrorCheck
from github_org_backup.settings import command_flags as own
from github_org_backup.settings import flags, variables
from github_org_backup.settings.command_flags import DEFAULT_REPOS_DEST
from github_org_backup.settings.config import (
    api_url_from,
    identity_from,
    owner_from,
    username_from,
)
from github_org_backup.settings.declare import Option, from_env, given, resolve
from github_org_backup.settings.options import (
    Output,
    RunControl,
    github_settings,
    output_from,
    refuse_shard_flags,
    run_control_from,
)


@dataclass(frozen=True)
class ReposOptions:
    output: Output
    run: RunControl
    config: ReposConfig
    github: GitHubSettings  # for the repository listing and the metadata
    allow_empty: bool = False
    metadata: Selection = field(default_factory=Selection)  # the kinds --metadata backs up


@dataclass(frozen=True)
class VerifyReposOptions:
    output: Output
    check: MirrorCheck
    allow_empty: bool = False


def _dest(text: str) -> Path:
    if text.startswith("oci:") or "://" in text:
        raise UsageError(
            f"--dest {text!r}: repos writes git mirrors to a directory, e.g. {DEFAULT_REPOS_DEST}"
        )
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise UsageError(f"--dest {text}: exists and is not a directory")
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise UsageError(f"--dest {text}: {blocking} is a file, so {path} cannot be a directory")
    return path


def load_repos_config(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> ReposConfig:
    from github_org_backup.github.repos import RepoFilter  # PyGithub is heavy: only repos needs it

    owner = owner_from(args, env)
    identity = identity_from(args, env)  # a token, or a GitHub App (never both)
    username = identity.git_username(username_from(env))
    api_url = api_url_from(args, env)
    renewed = identity.kind == "app"  # an App's token expires: each git run asks for it
    return ReposConfig(
        owner=owner,
        identity=identity,
        username=username,
        api_url=api_url,
        dest=_dest(resolve(own.REPOS_DEST, args, env)),
        repo_filter=RepoFilter(
            tuple(resolve(own.INCLUDE_REPO, args, env)),
            tuple(resolve(own.EXCLUDE_REPO, args, env)),
            include_forks=resolve(own.INCLUDE_FORKS, args, env),
        ),
        pull_refs=resolve(own.PULL_REFS, args, env),
        wikis=resolve(own.WIKIS, args, env),
        lfs=resolve(own.LFS, args, env),
        concurrency=resolve(own.REPOS_CONCURRENCY, args, env),
        git=GitSettings(
            username,
            None if renewed else identity.git_token(),
            resolve(own.REPOS_CA_FILE, args, env),
            resolve(own.REPOS_READ_TIMEOUT, args, env),
            token_host=GitHost.for_api(api_url),
            repo_timeout_s=resolve(own.REPO_TIMEOUT, args, env),
            token_source=identity.git_token if renewed else None,
            secrets_source=identity.secrets,
        ),
    )


def repos_options(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> ReposOptions:
    return ReposOptions(
        output_from(args),
        run_control_from(args, env, concurrency=own.REPOS_CONCURRENCY),
        load_repos_config(args, env),
        github_settings(args.command, env),
        allow_empty=resolve(flags.ALLOW_EMPTY, args, env),
        metadata=Selection.parse(resolve(own.METADATA, args, env)),
    )


_IMAGE_ONLY: tuple[Option, ...] = (own.DEST, own.FROM_REPORT, flags.MAX_REQUEST_RATE)
# The registry's transfer bounds mean nothing to git: refused rather than ignored.
_IMAGE_BOUNDS: tuple[Option, ...] = (
    flags.MIN_SPEED,
    flags.MAX_BLOB_SIZE,
    flags.ALLOW_TOKEN_REALM,
    flags.ALLOW_INTERNAL_REDIRECTS,
)


def verify_repos_options(
    args: argparse.Namespace, env: Mapping[str, str] = os.environ
) -> VerifyReposOptions:
    # Flags only: a BACKUP_DEST set for the image backups of the same job is no mistake.
    if any(given(o, args, {}) for o in _IMAGE_ONLY):
        raise UsageError(
            "--repos checks git mirrors: --dest, --from-report and --max-request-rate are for "
            "image backups; run verify once for each"
        )
    refuse_shard_flags(args, "--repos checks git mirrors")
    bounds = [o.flags[0] for o in _IMAGE_BOUNDS if given(o, args, {})]
    if bounds:
        raise UsageError(
            f"--repos checks git mirrors: {', '.join(bounds)}: for image backups only "
            "(git's stall limit is --read-timeout)"
        )
    root = Path(resolve(own.REPOS_ROOT, args, env))
    if not root.is_dir():
        raise UsageError(f"--repos {root}: directory does not exist")
    read_timeout = resolve(flags.READ_TIMEOUT, args, env)
    return VerifyReposOptions(
        output=output_from(args),
        check=MirrorCheck(
            root=root,
            mirrors=PackageFilter(tuple(resolve(own.INCLUDE_PACKAGE, args, env))),
            deep=resolve(own.DEEP, args, env),
            concurrency=resolve(flags.CONCURRENCY, args, env),
            git=GitSettings(
                username_from(env),
                from_env(variables.GITHUB_TOKEN, env),
                resolve(flags.CA_FILE, args, env),
                read_timeout,
                token_host=GitHost.for_api(api_url_from(None, env)),
            ),
            timeout_s=resolve(flags.CONNECT_TIMEOUT, args, env) + read_timeout,
        ),
        allow_empty=resolve(flags.ALLOW_EMPTY, args, env),
    )
