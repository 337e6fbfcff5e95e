"""The `restore-metadata` command: its options, declared once, and its options builder.

Its own options are declared here, the shared ones (the report, the logs, the GitHub token and
API) as the same declarations narrowed to this command. This module is read by every --help:
what the builder needs beyond the declarations (settings.config, settings.options, which load
the registry clients) is imported when the command runs.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from github_org_backup.errors import UsageError
from github_org_backup.settings import flags, values
from github_org_backup.settings.declare import Option, resolve

if TYPE_CHECKING:
    from github_org_backup.settings.options import Output

NAME = "restore-metadata"
THIS = frozenset({NAME})
WHAT, SELECTION = "what to do", "selection"

TOKEN_FOR_RESTORE = (  # words for messages, not a token
    "a token that may write to --to: a classic personal access token with the repo scope, "  # noqa: S105
    "or a fine-grained one with Contents: write (releases) and Issues: write (issues)"
)

STORE = Option(
    ("--from",),
    "the metadata store that repos --metadata wrote: DEST/OWNER/metadata (DEST/OWNER will do)",
    THIS,
    WHAT,
    dest="store",
    parse=Path,
    required=True,
    metavar="DIR",
)
REPO = Option(
    ("--repo",),
    "the backed-up repository to restore from, by its name below the owner",
    THIS,
    WHAT,
    required=True,
    metavar="NAME",
)
TARGET = Option(
    ("--to",),
    "the repository to restore into, which must exist: create it (and push the git mirror to "
    "it, so that the releases' tags are there) first",
    THIS,
    WHAT,
    dest="target",
    metavar="OWNER/REPO",
)
RELEASES = Option(
    ("--releases",),
    "with --to: create each release (tag, target, name, body, draft, prerelease) and upload "
    "its assets from the store, each file's size and sha256 checked first; a release whose tag "
    "already has one in --to is skipped",
    THIS,
    WHAT,
    action="store_true",
)
ISSUES = Option(
    ("--issues",),
    "with --to: replay the issues, pull requests among them as issues, in number order: each "
    "created with a header naming its original number, author and time, its comments added "
    "alike, closed if it was",
    THIS,
    WHAT,
    action="store_true",
)
ISSUES_FROM = Option(
    ("--issues-from",),
    "with --to: replay this export (as --export-issues wrote it, perhaps edited) instead of "
    "the store's issues",
    THIS,
    WHAT,
    parse=Path,
    metavar="FILE",
)
EXPORT_ISSUES = Option(
    ("--export-issues",),
    "write the issues in the replay form, one JSON object a line, to FILE ('-' for stdout); "
    "needs no token",
    THIS,
    WHAT,
    parse=Path,
    metavar="FILE",
)
AS_OF = Option(
    ("--as-of",),
    "restore the store as one run left it: a commit of its history (git -C DIR log) or the "
    "last run at or before TIME (2026-11-29, 2026-11-29T03:00:00Z); default: the last run "
    "(HEAD)",
    THIS,
    SELECTION,
    metavar="REV|TIME",
)
WRITE_INTERVAL = Option(
    ("--write-interval",),
    "seconds between the requests that create something: GitHub asks for at least 1, and "
    "answers faster writers with its secondary rate limit",
    THIS,
    flags.NETWORK,
    parse=values.grace_seconds,
    default=1.0,
    metavar="SECONDS",
)

OPTIONS: tuple[Option, ...] = (
    STORE,
    REPO,
    TARGET,
    RELEASES,
    ISSUES,
    ISSUES_FROM,
    EXPORT_ISSUES,
    AS_OF,
    WRITE_INTERVAL,
)

_REPO_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
_OWNER = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})")


@dataclass(frozen=True)
class RestoreMetadataOptions:
    output: Output
    store: Path
    repo: str
    as_of: str | None
    export_issues: Path | None
    target: str | None  # OWNER/REPO
    releases: bool
    issues: bool
    issues_from: Path | None
    api_url: str  # empty without --to
    token: str = field(repr=False)
    write_interval_s: float = 1.0
    allow_empty: bool = False


def _repository(text: str, flag: str, example: str) -> str:
    if not _REPO_NAME.fullmatch(text) or text in (".", ".."):
        raise UsageError(f"{flag} {text!r} is not a repository name: give one such as {example}")
    return text


def _target(text: str | None) -> str | None:
    if text is None:
        return None
    owner, sep, name = text.strip().partition("/")
    if not sep or not _OWNER.fullmatch(owner):
        raise UsageError(f"--to {text!r}: give the repository to restore into as OWNER/REPO")
    return f"{owner}/{_repository(name, '--to', 'acme/app-restored')}"


def restore_metadata_options(
    args: argparse.Namespace, env: Mapping[str, str] = os.environ
) -> RestoreMetadataOptions:
    # Loaded here, not by --help: they bring the registry clients along.
    from github_org_backup.output.report import check_output_path
    from github_org_backup.settings.config import api_url_from, read_token
    from github_org_backup.settings.options import output_from

    target = _target(resolve(TARGET, args, env))
    releases, issues = resolve(RELEASES, args, env), resolve(ISSUES, args, env)
    issues_from = resolve(ISSUES_FROM, args, env)
    export = resolve(EXPORT_ISSUES, args, env)
    replays = issues or issues_from is not None
    if not (releases or replays or export):
        raise UsageError(
            "say what to restore: --to OWNER/REPO with --releases and/or --issues (or "
            "--issues-from FILE), or --export-issues FILE"
        )
    if (releases or replays) and target is None:
        raise UsageError("--releases, --issues and --issues-from need --to OWNER/REPO")
    if target is not None and not (releases or replays):
        raise UsageError(f"--to {target}: add --releases, --issues or --issues-from FILE")
    if issues_from is not None and not issues_from.is_file():
        raise UsageError(
            f"--issues-from {issues_from}: no such file (write one with --export-issues)"
        )
    output = output_from(args)
    if export is not None:
        if str(export) == "-" and output.report is not None and str(output.report) == "-":
            raise UsageError("--export-issues - and --report - cannot both write to stdout")
        check_output_path(export, "--export-issues")
    token, api_url = "", ""
    if target is not None:  # an export alone sends nothing anywhere
        token = read_token(resolve(flags.GITHUB_TOKEN_FILE, args, env), env, kind=TOKEN_FOR_RESTORE)
        api_url = api_url_from(args, env)
    return RestoreMetadataOptions(
        output=output,
        store=resolve(STORE, args, env),
        repo=_repository(resolve(REPO, args, env), "--repo", "app"),
        as_of=resolve(AS_OF, args, env),
        export_issues=export,
        target=target,
        releases=releases,
        issues=replays,
        issues_from=issues_from,
        api_url=api_url,
        token=token,
        write_interval_s=resolve(WRITE_INTERVAL, args, env),
        allow_empty=resolve(flags.ALLOW_EMPTY, args, env),
    )
