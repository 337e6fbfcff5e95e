"""Command line: flags and environment into one run; exit codes 0 / 1 / 2."""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import select
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import structlog

from github_org_backup import __version__
from github_org_backup.base.limits import (
    DEFAULT_IMAGE_TIMEOUT_S,
    DEFAULT_MAX_BLOB_BYTES,
    DEFAULT_MIN_BYTES_PER_S,
)
from github_org_backup.base.logs import configure_logging
from github_org_backup.base.redact import redact_text
from github_org_backup.commands import (
    EXIT_FAILED,
    EXIT_USAGE,
    run_copy,
    run_registry,
    run_restore,
    run_snapshots,
    run_verify,
)
from github_org_backup.copy.engine import DEFAULT_CONCURRENCY
from github_org_backup.errors import BackupError, UsageError
from github_org_backup.repos.command import (
    DEFAULT_REPOS_CONCURRENCY,
    DEFAULT_REPOS_DEST,
    repos_options,
    run_repos,
    run_verify_repos,
    verify_repos_options,
)
from github_org_backup.settings.options import (
    copy_options,
    registry_options,
    restore_options,
    snapshots_options,
    verify_options,
)

log = structlog.get_logger("github_org_backup.cli")

EXIT_CRASHED = 70  # EX_SOFTWARE: an internal error, not the input's fault
EXIT_PIPE_CLOSED = 128 + 13  # 141, as `git log | head` ends when killed by SIGPIPE
Options = TypeVar("Options")


_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1024**3,
}


def _size(text: str) -> int:
    """A byte count such as 5242880, 64MiB or 100MB."""
    match = re.fullmatch(r"\s*([0-9]+)\s*([A-Za-z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 64MiB")
    value = int(match.group(1)) * _UNITS[match.group(2).lower()]
    if value < 1024:
        raise argparse.ArgumentTypeError("chunks must be at least 1 KiB")
    return value


def _byte_rate(text: str) -> int:
    """A byte count (0 allowed) such as 10KiB or 16GiB, for the bounds."""
    match = re.fullmatch(r"\s*([0-9]+)\s*([A-Za-z]*?)(?:/s)?\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 10KiB or 16GiB")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def _blob_limit(text: str) -> int:
    value = _byte_rate(text)
    if value < 1024:
        raise argparse.ArgumentTypeError("give at least 1KiB: every blob would be refused")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


class _HelpFormatter(argparse.HelpFormatter):
    """Wraps one-paragraph texts as usual; keeps the line layout of the multi-line epilogs."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def _output_options() -> argparse.ArgumentParser:
    """Flags every command honours: the report and the logs."""
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument(
        "--report",
        type=Path,
        metavar="FILE",
        help="write a JSON report of the run to FILE ('-' for stdout)",
    )
    output.add_argument(
        "--log-format",
        choices=("auto", "json", "console"),
        default="auto",
        help="log rendering (default: console on a TTY, else JSON)",
    )
    output.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), default="info"
    )
    return output


def _network_options(*, concurrency: bool = True) -> argparse.ArgumentParser:
    """Flags of every command that talks to registries."""
    network = argparse.ArgumentParser(add_help=False)
    if concurrency:
        network.add_argument(
            "--concurrency",
            type=_positive_int,
            default=DEFAULT_CONCURRENCY,
            help="images and blob transfers in flight at once (default %(default)s)",
        )
    network.add_argument(
        "--ca-file",
        type=Path,
        metavar="PEM",
        help="trust this CA bundle in addition to the system's",
    )
    network.add_argument(
        "--max-request-rate",
        type=_request_rate,
        action="append",
        default=[],
        metavar="HOST=N/s",
        help="never send more than N requests a second (or N/min) to HOST (repeatable); "
        "without it a 429 still halves the rate to that host, which then recovers",
    )
    network.add_argument(
        "--connect-timeout",
        type=_positive_float,
        default=30.0,
        metavar="SECONDS",
        help="TCP/TLS connect timeout (default %(default)s)",
    )
    network.add_argument(
        "--min-speed",
        type=_byte_rate,
        default=DEFAULT_MIN_BYTES_PER_S,
        metavar="BYTES/s",
        help="fail a body that brings less than this in any 20 s window (default 10KiB/s; "
        "0: no floor): a stalled or trickling registry fails that image instead of the run",
    )
    network.add_argument(
        "--max-blob-size",
        type=_blob_limit,
        default=DEFAULT_MAX_BLOB_BYTES,
        metavar="SIZE",
        help="refuse, before any byte moves, a blob whose descriptor claims more "
        "(default 16GiB; GHCR's layer limit is 10 GB)",
    )
    network.add_argument(
        "--allow-token-realm",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="also send a registry's credentials to this token service (repeatable) "
        "[BACKUP_ALLOW_TOKEN_REALMS, comma-separated]; by default only the registry's own host "
        "and hosts of its registrable domain over https get them",
    )
    network.add_argument(
        "--allow-internal-redirects",
        action="store_true",
        help="follow a registry's redirects to loopback, private or reserved addresses even "
        "when the registry itself is not on one (never to link-local: cloud metadata)",
    )
    network.add_argument(
        "--read-timeout",
        type=_positive_float,
        default=300.0,
        metavar="SECONDS",
        help="longest silence on a socket before the request is retried (default %(default)s); "
        "a slow layer that keeps moving faster than --min-speed goes on until --image-timeout",
    )
    return network


def _copy_options() -> argparse.ArgumentParser:
    """Flags of the commands that copy images: copy, registry, restore."""
    copying = argparse.ArgumentParser(add_help=False)
    copying.add_argument(
        "--image-timeout",
        type=_positive_float,
        default=DEFAULT_IMAGE_TIMEOUT_S,
        metavar="SECONDS",
        help="fail an image that is not copied within this time (default %(default)g); "
        "the rest of the run goes on",
    )
    copying.add_argument(
        "--chunk-size",
        type=_size,
        metavar="SIZE",
        help="upload blobs in PATCH chunks of SIZE (e.g. 64MiB) for registries or proxies that "
        "limit request bodies; default: one streamed PUT per blob",
    )
    copying.add_argument(
        "--grace-period",
        type=_grace_seconds,
        default=25.0,
        metavar="SECONDS",
        help="on SIGTERM, start nothing new and give work in flight this long to finish "
        "(default %(default)s)",
    )
    copying.add_argument(
        "--pushgateway",
        metavar="URL",
        help="push the run's Prometheus metrics to this Pushgateway [PUSHGATEWAY_URL]",
    )
    copying.add_argument(
        "--metrics-file",
        type=Path,
        metavar="FILE",
        help="write the run's Prometheus metrics to FILE (node_exporter textfile format)",
    )
    copying.add_argument(
        "--progress-interval",
        type=_progress_seconds,
        default=5.0,
        metavar="SECONDS",
        help="seconds between progress lines (default %(default)s)",
    )
    return copying


_COPY_EXIT = (
    "exit status: 0 every image copied or already current; 1 some images (or, for registry,\n"
    "some packages) failed, the rest were copied; 2 usage, configuration or access error\n"
    "before anything was copied; 143 stopped by SIGTERM or SIGINT (the report is written)"
)

# Environment variables that have no flag of their own, by command.
_DOCKER_CONFIG = (
    "  DOCKER_CONFIG       directory of the docker config.json with registry credentials\n"
    "                      (default ~/.docker)"
)
_DEST_CREDENTIALS = (
    "  DEST_USERNAME, DEST_PASSWORD\n"
    "                      credentials for the destination registry, both or neither\n"
    "                      (otherwise docker config.json)"
)
_REGISTRY_ENVIRONMENT = "\n".join(
    (
        "environment:",
        "  GITHUB_TOKEN        the GitHub token (a classic PAT with read:packages),",
        "                      unless --github-token-file",
        "  GITHUB_USERNAME     username sent with the token to the source registry",
        "                      (default github-org-backup)",
        "  GITHUB_ORG, GITHUB_OWNER_USER, GITHUB_API_URL, SOURCE_REGISTRY, BACKUP_DEST,",
        "  BACKUP_SHARD, BACKUP_SHARD_COUNT, PUSHGATEWAY_URL",
        "                      the same as the flags named with them above",
        "  JOB_COMPLETION_INDEX the shard index with --shard-count (Kubernetes Indexed Job)",
        "  GITHUB_API_RETRIES  retries of a failing GitHub API request: 5xx, 429, rate-limit",
        "                      403s, connection errors (default 6, 0-20)",
        "  GITHUB_API_MAX_PAGE_BYTES  bytes read of one GitHub API page (default 10485760)",
        "  GITHUB_API_MAX_PAGES  pages of one package's versions (default 1000)",
        _DEST_CREDENTIALS,
        _DOCKER_CONFIG,
    )
)


def _request_rate(text: str) -> tuple[str, float]:
    """``HOST=N/s`` or ``HOST=N/min`` (``host[:port]`` as in references)."""
    match = re.fullmatch(r"\s*([^=\s]+)\s*=\s*([0-9]+(?:\.[0-9]+)?)\s*/\s*(s|min)\s*", text)
    if not match or not 0 < float(match.group(2)) < math.inf:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a rate like ghcr.io=50/s or ghcr.io=2000/min"
        )
    host = match.group(1).removeprefix("https://").removeprefix("http://").rstrip("/")
    per_second = float(match.group(2)) / (60 if match.group(3) == "min" else 1)
    return host, per_second


def _seconds(text: str, *, minimum: float, inclusive: bool) -> float:
    """A finite number of seconds: inf or nan would disable the bound the flag sets."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    low_enough = value < minimum if inclusive else value <= minimum
    if not math.isfinite(value) or low_enough:
        bound = f"at least {minimum:g}" if inclusive else f"more than {minimum:g}"
        raise argparse.ArgumentTypeError(f"{text!r}: give a finite number of seconds, {bound}")
    return value


def _positive_float(text: str) -> float:
    """A timeout: finite and more than 0."""
    return _seconds(text, minimum=0, inclusive=False)


def _grace_seconds(text: str) -> float:
    """A grace period: finite, 0 (stop at once) or more."""
    return _seconds(text, minimum=0, inclusive=True)


MIN_PROGRESS_INTERVAL_S = 0.01  # at most 100 progress lines a second; 0 would be a busy loop


def _progress_seconds(text: str) -> float:
    return _seconds(text, minimum=MIN_PROGRESS_INTERVAL_S, inclusive=True)


def _retention_options() -> argparse.ArgumentParser:
    """How long the snapshots a run writes are kept (see github_org_backup.history.snapshots)."""
    retention = argparse.ArgumentParser(add_help=False)
    retention.add_argument(
        "--keep-last",
        type=_positive_int,
        metavar="N",
        help="keep the N latest snapshots (with --keep-within: those either keeps); the latest "
        "is always kept. Default: keep every snapshot",
    )
    retention.add_argument(
        "--keep-within",
        metavar="DURATION",
        help="keep the snapshots newer than DURATION (90d, 12h, 2w, 1y)",
    )
    return retention


_SHARD_SERIES_ENV = (
    "  BACKUP_SHARD        the same as --shard",
    "  BACKUP_SHARD_COUNT  the same as --shard-count",
)


def _shard_option(parser: argparse.ArgumentParser) -> None:
    shards = parser.add_mutually_exclusive_group()
    shards.add_argument(
        "--shard",
        metavar="I/N",
        help="the snapshot series of shard I of N, for a backup made with --shard or "
        "--shard-count [BACKUP_SHARD]",
    )
    shards.add_argument(
        "--shard-count",
        metavar="N",
        help="the snapshot series of all N shards, for a backup made in N shards "
        "[BACKUP_SHARD_COUNT]",
    )


def _add_copy(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    copy = commands.add_parser(
        "copy",
        parents=parents,
        formatter_class=_HelpFormatter,
        help="copy images between registries",
        description="Copy one image (SRC DST) or a set of copy specs (--specs FILE).",
        epilog="\n".join(("environment:", _DOCKER_CONFIG, "", _COPY_EXIT)),
    )
    copy.add_argument("source", nargs="?", metavar="SRC", help="[http://]host/repo[:tag][@digest]")
    copy.add_argument("destination", nargs="?", metavar="DST")
    copy.add_argument(
        "--specs", metavar="FILE", help="JSON copy specs ({src, dst, transform}); '-' reads stdin"
    )
    copy.add_argument(
        "--snapshot-prefix",
        metavar="PREFIX",
        help="after the copy, record a snapshot of the tags written below PREFIX (a registry "
        "prefix or oci:DIR), as registry does; default: no snapshot",
    )
    copy.add_argument(
        "--platform",
        action="append",
        default=[],
        metavar="OS/ARCH[/VARIANT]",
        help="with SRC DST: copy only these platforms of an index (repeatable)",
    )


def _github_options(parser: argparse.ArgumentParser, what: str) -> None:
    """The owner and the GitHub API, as registry and repos take them."""
    owner = parser.add_mutually_exclusive_group()
    owner.add_argument("--org", help="organisation to back up [GITHUB_ORG]")
    owner.add_argument("--user", help=f"user whose {what} to back up [GITHUB_OWNER_USER]")
    parser.add_argument(
        "--github-token-file",
        metavar="PATH",
        help="read the GitHub token from PATH instead of GITHUB_TOKEN",
    )
    parser.add_argument(
        "--github-api-url",
        metavar="URL",
        help="REST API base [GITHUB_API_URL] (default https://api.github.com; "
        "GHES: https://HOST/api/v3)",
    )


def _add_registry(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    reg = commands.add_parser(
        "registry",
        parents=parents,
        formatter_class=_HelpFormatter,
        help="back up every container package of a GitHub owner",
        description="Discover an organisation's (or user's) GHCR packages through the GitHub "
        "API, keep the latest patch of every major.minor, and copy them to --dest.",
        epilog="\n".join((_REGISTRY_ENVIRONMENT, "", _COPY_EXIT)),
    )
    _github_options(reg, "packages")
    reg.add_argument(
        "--source-registry",
        metavar="HOST",
        help="registry serving the packages [SOURCE_REGISTRY] (default ghcr.io)",
    )
    reg.add_argument(
        "--dest",
        metavar="PREFIX",
        help="destination prefix [BACKUP_DEST], e.g. registry.example.com/ghcr-backup or "
        "oci:/backups/ghcr (default oci:./ghcr-backup, an OCI image layout)",
    )
    reg.add_argument("--all-patches", action="store_true", help="keep every semver tag")
    reg.add_argument(
        "--keep-prereleases",
        action="store_true",
        help="keep prerelease tags (rc, beta, ...), trimmed like releases",
    )
    reg.add_argument(
        "--include-tag",
        action="append",
        default=[],
        metavar="REGEX",
        help="always keep tags matching REGEX (repeatable)",
    )
    reg.add_argument(
        "--exclude-tag",
        action="append",
        default=[],
        metavar="REGEX",
        help="drop tags matching REGEX (repeatable)",
    )
    reg.add_argument(
        "--include-package",
        action="append",
        default=[],
        metavar="GLOB",
        help="back up only packages matching GLOB (repeatable)",
    )
    reg.add_argument(
        "--exclude-package",
        action="append",
        default=[],
        metavar="GLOB",
        help="skip packages matching GLOB (repeatable)",
    )
    reg.add_argument(
        "--prune",
        action="store_true",
        help="delete destination tags the policy no longer keeps (never blobs); with --dry-run, "
        "print them instead",
    )
    reg.add_argument(
        "--platform",
        action="append",
        default=[],
        metavar="OS/ARCH[/VARIANT]",
        help="copy only these platforms of each index (repeatable)",
    )
    shards = reg.add_mutually_exclusive_group()
    shards.add_argument("--shard", metavar="I/N", help="back up only shard I of N [BACKUP_SHARD]")
    shards.add_argument(
        "--shard-count",
        type=_positive_int,
        metavar="N",
        help="shard count, with the index from JOB_COMPLETION_INDEX [BACKUP_SHARD_COUNT]",
    )
    reg.add_argument(
        "--no-discovery-cache",
        dest="discovery_cache",
        action="store_false",
        help="read every package's versions from GitHub instead of the cache kept beside the "
        "snapshots (a fresh cache is still written)",
    )
    mode = reg.add_mutually_exclusive_group()
    mode.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan (kept tags with digest and destination, dropped tags with the "
        "reason) and write nothing",
    )
    mode.add_argument(
        "--emit-specs",
        action="store_true",
        help="print the copy specs as JSON lines instead of copying",
    )


def _add_verify(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    verify = commands.add_parser(
        "verify",
        parents=parents,
        formatter_class=_HelpFormatter,
        help="check that every backed-up tag is complete",
        epilog="\n".join(
            (
                "environment:",
                "  BACKUP_DEST         the same as --dest",
                *_SHARD_SERIES_ENV,
                _DEST_CREDENTIALS,
                _DOCKER_CONFIG,
                "",
                "exit status: 0 every tag complete; 1 problems found (one line each on stdout),\n"
                "or no tag found; 2 usage or configuration error (a missing layout directory,\n"
                "a registry without /v2/_catalog and no --from-report, or no snapshot of a\n"
                "shard named by --shard or --shard-count)",
            )
        ),
        description="Walk every repository and tag below --dest (a registry prefix or "
        "oci:DIR) and check that every manifest and blob exists with the right size. A registry "
        "without /v2/_catalog (ECR, GAR) cannot list its tags: they are taken from the latest "
        "snapshot, or, for a backup made in N shards, with --shard-count N from the latest "
        "snapshot of every shard. With a catalog every tag is checked and the shard flags "
        "change nothing.",
    )
    verify.add_argument(
        "--dest",
        metavar="PREFIX",
        help="the backup to check [BACKUP_DEST] (default oci:./ghcr-backup)",
    )
    verify.add_argument(
        "--deep", action="store_true", help="download and re-hash every manifest and blob"
    )
    verify.add_argument(
        "--from-report",
        type=Path,
        metavar="FILE",
        help="take the tags from a run's report when the registry has no /v2/_catalog",
    )
    _shard_option(verify)
    verify.add_argument(
        "--include-package",
        action="append",
        default=[],
        metavar="GLOB",
        help="check only repositories (below the prefix) matching GLOB; with --repos, "
        "mirrors named OWNER/REPO matching GLOB",
    )
    verify.add_argument(
        "--repos",
        type=Path,
        metavar="DIR",
        help="check the git mirrors the repos command wrote to DIR instead: git fsck each "
        "(--deep: every object, and git lfs fsck), and with GITHUB_TOKEN (and GITHUB_USERNAME) "
        "set compare its refs with the source's (git ls-remote)",
    )


_REPOS_ENVIRONMENT = "\n".join(
    (
        "environment:",
        "  GITHUB_TOKEN        the GitHub token (classic PAT with the repo scope, or a",
        "                      fine-grained token with Contents: read), unless",
        "                      --github-token-file; git gets it in its environment only",
        "  GITHUB_USERNAME     username sent with the token to the git server",
        "                      (default github-org-backup)",
        "  GITHUB_ORG, GITHUB_OWNER_USER, GITHUB_API_URL, REPOS_DEST, PUSHGATEWAY_URL",
        "                      the same as the flags named with them above",
    )
)
_REPOS_EXIT = (
    "exit status: 0 every repository mirrored or already current; 1 some repositories failed,\n"
    "the rest were mirrored; 2 usage, configuration or access error before anything was\n"
    "fetched; 143 stopped by SIGTERM or SIGINT (the report is written)"
)


def _add_repos(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    repos = commands.add_parser(
        "repos",
        parents=parents,
        formatter_class=_HelpFormatter,
        help="back up every git repository of a GitHub owner as bare mirrors",
        description="List an organisation's (or user's) repositories through the GitHub API "
        "and keep a bare mirror of each at DEST/OWNER/REPO.git with every branch and tag. "
        "Later runs fetch only what changed; a tip the source force-pushed away or deleted "
        "stays under refs/backup/<UTC time>/.",
        epilog="\n".join((_REPOS_ENVIRONMENT, "", _REPOS_EXIT)),
    )
    _github_options(repos, "repositories")
    repos.add_argument(
        "--dest",
        metavar="DIR",
        help=f"directory of the mirrors [REPOS_DEST] (default {DEFAULT_REPOS_DEST})",
    )
    repos.add_argument(
        "--include-forks", action="store_true", help="also back up forks (skipped by default)"
    )
    repos.add_argument(
        "--include-repo",
        action="append",
        default=[],
        metavar="GLOB",
        help="back up only repositories whose REPO or OWNER/REPO matches GLOB (repeatable)",
    )
    repos.add_argument(
        "--exclude-repo",
        action="append",
        default=[],
        metavar="GLOB",
        help="skip repositories whose REPO or OWNER/REPO matches GLOB (repeatable)",
    )
    repos.add_argument(
        "--pull-refs",
        action="store_true",
        help="also fetch GitHub's refs/pull/* (pull request heads and merges)",
    )
    repos.add_argument(
        "--wikis",
        action="store_true",
        help="also mirror each wiki to REPO.wiki.git (a repository without one is not a failure)",
    )
    repos.add_argument(
        "--lfs", action="store_true", help="also fetch Git LFS objects (needs git-lfs)"
    )
    repos.add_argument(
        "--concurrency",
        type=_positive_int,
        default=DEFAULT_REPOS_CONCURRENCY,
        help="repositories fetched at once (default %(default)s)",
    )
    repos.add_argument(
        "--ca-file",
        type=Path,
        metavar="PEM",
        help="CA bundle git trusts for the git server (http.sslCAInfo)",
    )
    repos.add_argument(
        "--read-timeout",
        type=_positive_float,
        default=300.0,
        metavar="SECONDS",
        help="abandon a git transfer slower than 1 KiB/s for this long (default %(default)s)",
    )
    repos.add_argument(
        "--repo-timeout",
        type=_positive_float,
        default=3600.0,
        metavar="SECONDS",
        help="abandon a repository whose fetch (and LFS fetch) has not ended after this long; "
        "its mirror stays as it was (default %(default)s)",
    )
    repos.add_argument(
        "--grace-period",
        type=_grace_seconds,
        default=25.0,
        metavar="SECONDS",
        help="on SIGTERM, start no new repository and give fetches in flight this long to "
        "finish (default %(default)s)",
    )
    repos.add_argument(
        "--pushgateway",
        metavar="URL",
        help="push the run's Prometheus metrics to this Pushgateway [PUSHGATEWAY_URL]",
    )
    repos.add_argument(
        "--metrics-file",
        type=Path,
        metavar="FILE",
        help="write the run's Prometheus metrics to FILE (node_exporter textfile format)",
    )
    repos.add_argument(
        "--progress-interval",
        type=_progress_seconds,
        default=5.0,
        metavar="SECONDS",
        help="seconds between progress lines (default %(default)s)",
    )


def _add_restore(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    restore = commands.add_parser(
        "restore",
        parents=parents,
        formatter_class=_HelpFormatter,
        help="copy a backup back into a registry",
        epilog="\n".join(
            (
                "environment:",
                _DEST_CREDENTIALS.replace("destination", "--to"),
                *_SHARD_SERIES_ENV,
                "  PUSHGATEWAY_URL     the same as --pushgateway",
                _DOCKER_CONFIG,
                "",
                _COPY_EXIT,
            )
        ),
        description="Copy the tags of a snapshot (by default the latest; every tag when the "
        "backup has no snapshot) from below --from to the same path below --to, byte-exact, "
        "with the same engine as copy. A backup made in N shards keeps one snapshot series "
        "per shard: --shard-count N restores all of them.",
    )
    restore.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="PREFIX",
        help="the backup: a registry prefix or oci:DIR",
    )
    restore.add_argument(
        "--to",
        dest="target",
        required=True,
        metavar="PREFIX",
        help="where to restore, e.g. ghcr.io or registry.example.com/restored",
    )
    restore.add_argument(
        "--include-package",
        action="append",
        default=[],
        metavar="GLOB",
        help="restore only repositories (below --from) matching GLOB",
    )
    restore.add_argument(
        "--include-tag",
        action="append",
        default=[],
        metavar="REGEX",
        help="restore only tags matching REGEX",
    )
    which = restore.add_mutually_exclusive_group()
    which.add_argument(
        "--snapshot",
        metavar="ID",
        help="restore exactly the state of this snapshot (see the snapshots command)",
    )
    which.add_argument(
        "--as-of",
        metavar="TIME",
        help="restore the latest snapshot at or before TIME (2026-11-29, 2026-11-29T03:00:00Z); "
        "default: the latest snapshot, or every tag when the backup has none",
    )
    _shard_option(restore)
    restore.add_argument(
        "--from-report",
        type=Path,
        metavar="FILE",
        help="take the tags from a run's report when --from has no catalog",
    )


def _add_snapshots(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    snapshots = commands.add_parser(
        "snapshots",
        parents=parents,
        formatter_class=_HelpFormatter,
        help="list the snapshots of a backup",
        description="List the snapshots kept in a backup: id (a UTC time), time, number of "
        "tags and of distinct digests, and the source.",
        epilog="\n".join(
            (
                "environment:",
                "  BACKUP_DEST         the same as --dest",
                *_SHARD_SERIES_ENV,
                _DEST_CREDENTIALS,
                _DOCKER_CONFIG,
                "",
                "exit status: 0 snapshots listed; 1 the backup has no snapshot; 2 usage or\n"
                "configuration error",
            )
        ),
    )
    snapshots.add_argument(
        "--dest",
        metavar="PREFIX",
        help="the backup [BACKUP_DEST] (default oci:./ghcr-backup)",
    )
    snapshots.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _shard_option(snapshots)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="github-org-backup",
        description="Back up container images byte-exact into a registry you own.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    output, network, copying = _output_options(), _network_options(), _copy_options()
    retention = _retention_options()
    _add_copy(commands, [output, network, copying, retention])
    _add_registry(commands, [output, network, copying, retention])
    _add_verify(commands, [output, network])
    _add_restore(commands, [output, network, copying])
    _add_snapshots(commands, [output, _network_options(concurrency=False)])
    _add_repos(commands, [output])
    return parser


Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


def _typed(
    build: Callable[[argparse.Namespace], Options], run: Callable[[Options], Awaitable[int]]
) -> Command:
    """A command that gets its typed options, built from the flags and environment."""

    async def command(args: argparse.Namespace) -> int:
        return await run(build(args))

    return command


async def _verify(args: argparse.Namespace) -> int:
    """verify checks git mirrors with --repos, image backups otherwise."""
    if args.repos is not None:
        return await run_verify_repos(verify_repos_options(args))
    return await run_verify(verify_options(args))


COMMANDS: dict[str, Command] = {
    "copy": _typed(copy_options, run_copy),
    "registry": _typed(registry_options, run_registry),
    "verify": _verify,
    "restore": _typed(restore_options, run_restore),
    "snapshots": _typed(snapshots_options, run_snapshots),
    "repos": _typed(repos_options, run_repos),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_format, args.log_level)
    command = COMMANDS[args.command]
    try:
        code = asyncio.run(command(args))
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except BrokenPipeError:
        if _output_closed():
            return _reader_went_away()
        return _crashed()  # a pipe to something else (a child process): not the reader's doing
    except UsageError as exc:
        print(f"github-org-backup: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BackupError as exc:
        log.error("run_failed", error=str(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except Exception:
        return _crashed()


def _crashed() -> int:
    """A bug: one JSON event with the traceback of the exception being handled, never a bare
    traceback."""
    exc = sys.exc_info()[1]
    log.critical(
        "run_crashed",
        error=redact_text(f"{type(exc).__name__}: {exc}"),
        hint="this is a bug in github-org-backup: please report it with this event",
        exc_info=True,
    )
    return EXIT_CRASHED


def _output_closed() -> bool:
    """Whether the reader of stdout or stderr has gone: a pipe without readers polls as an
    error (a closed socket as a hang-up); a terminal or a file never does."""
    poller = select.poll()
    for stream in (sys.stdout, sys.stderr):
        try:
            poller.register(stream.fileno(), select.POLLOUT)
        except (OSError, ValueError):  # a stream without a descriptor (e.g. under pytest)
            continue
    return any(events & (select.POLLERR | select.POLLHUP) for _fd, events in poller.poll(0))


def _reader_went_away() -> int:
    """The reader of stdout (or stderr) closed its end, as ``| head`` does: end quietly.

    What is still buffered goes to /dev/null so the interpreter's exit cannot report the broken
    pipe again. 141 rather than 0: under ``set -o pipefail`` a script learns, as it would from
    git, that the output it asked for was not all delivered.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(devnull, stream.fileno())
        except (OSError, ValueError):  # a stream without a descriptor (e.g. under pytest)
            continue
    os.close(devnull)
    return EXIT_PIPE_CLOSED
