"""Command line: flags and environment into one run; exit codes 0 / 1 / 2."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

from backup import __version__
from backup.commands import (
    EXIT_FAILED,
    EXIT_USAGE,
    run_copy,
    run_registry,
    run_restore,
    run_verify,
)
from backup.engine import DEFAULT_CONCURRENCY
from backup.errors import BackupError, UsageError
from backup.logs import configure_logging

log = structlog.get_logger("backup.cli")


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


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--concurrency",
        type=_positive_int,
        default=DEFAULT_CONCURRENCY,
        help="images and blob transfers in flight at once (default %(default)s)",
    )
    common.add_argument(
        "--report",
        type=Path,
        metavar="FILE",
        help="write a JSON report of the run to FILE ('-' for stdout)",
    )
    common.add_argument(
        "--ca-file",
        type=Path,
        metavar="PEM",
        help="trust this CA bundle in addition to the system's",
    )
    common.add_argument(
        "--log-format",
        choices=("auto", "json", "console"),
        default="auto",
        help="log rendering (default: console on a TTY, else JSON)",
    )
    common.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), default="info"
    )
    common.add_argument(
        "--chunk-size",
        type=_size,
        metavar="SIZE",
        help="upload blobs in PATCH chunks of SIZE (e.g. 64MiB) for registries or proxies that "
        "limit request bodies; default: one streamed PUT per blob",
    )
    common.add_argument(
        "--connect-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="TCP/TLS connect timeout (default %(default)s)",
    )
    common.add_argument(
        "--read-timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="longest silence on a socket before the request is retried (default %(default)s); "
        "there is no whole-request limit, so a slow but moving layer never times out",
    )
    common.add_argument(
        "--grace-period",
        type=float,
        default=25.0,
        metavar="SECONDS",
        help="on SIGTERM, start nothing new and give work in flight this long to finish "
        "(default %(default)s)",
    )
    common.add_argument(
        "--pushgateway",
        metavar="URL",
        help="push the run's Prometheus metrics to this Pushgateway [PUSHGATEWAY_URL]",
    )
    common.add_argument(
        "--metrics-file",
        type=Path,
        metavar="FILE",
        help="write the run's Prometheus metrics to FILE (node_exporter textfile format)",
    )
    common.add_argument(
        "--progress-interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="seconds between progress lines (default %(default)s)",
    )
    return common


def _add_copy(commands: Any, common: argparse.ArgumentParser) -> None:
    copy = commands.add_parser(
        "copy",
        parents=[common],
        help="copy images between registries",
        description="Copy one image (SRC DST) or a set of copy specs (--specs FILE).",
        epilog="Credentials come from docker config.json ($DOCKER_CONFIG or ~/.docker).",
    )
    copy.add_argument("source", nargs="?", metavar="SRC", help="[http://]host/repo[:tag][@digest]")
    copy.add_argument("destination", nargs="?", metavar="DST")
    copy.add_argument(
        "--specs", metavar="FILE", help="JSON copy specs ({src, dst, transform}); '-' reads stdin"
    )
    copy.add_argument(
        "--platform",
        action="append",
        default=[],
        metavar="OS/ARCH[/VARIANT]",
        help="with SRC DST: copy only these platforms of an index (repeatable)",
    )


def _add_registry(commands: Any, common: argparse.ArgumentParser) -> None:
    reg = commands.add_parser(
        "registry",
        parents=[common],
        help="back up every container package of a GitHub owner",
        description="Discover an organisation's (or user's) GHCR packages through the GitHub "
        "API, keep the latest patch of every major.minor, and copy them to --dest.",
        epilog="The token comes from GITHUB_TOKEN or --github-token-file, never a flag value. "
        "Destination credentials: docker config.json, or DEST_USERNAME / DEST_PASSWORD.",
    )
    owner = reg.add_mutually_exclusive_group()
    owner.add_argument("--org", help="organisation to back up [GITHUB_ORG]")
    owner.add_argument("--user", help="user whose packages to back up [GITHUB_OWNER_USER]")
    reg.add_argument(
        "--github-token-file",
        metavar="PATH",
        help="read the GitHub token from PATH instead of GITHUB_TOKEN",
    )
    reg.add_argument(
        "--github-api-url",
        metavar="URL",
        help="REST API base [GITHUB_API_URL] (default https://api.github.com; "
        "GHES: https://HOST/api/v3)",
    )
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
    reg.add_argument("--shard", metavar="I/N", help="back up only shard I of N [BACKUP_SHARD]")
    reg.add_argument(
        "--shard-count",
        type=_positive_int,
        metavar="N",
        help="shard count, with the index from JOB_COMPLETION_INDEX",
    )
    mode = reg.add_mutually_exclusive_group()
    mode.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan (kept and dropped tags) and write nothing",
    )
    mode.add_argument(
        "--emit-specs",
        action="store_true",
        help="print the copy specs as JSON lines instead of copying",
    )


def _add_verify(commands: Any, common: argparse.ArgumentParser) -> None:
    verify = commands.add_parser(
        "verify",
        parents=[common],
        help="check that every backed-up tag is complete",
        description="Walk every repository and tag below --dest (a registry prefix or "
        "oci:DIR) and check that every manifest and blob exists with the right size.",
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
    verify.add_argument(
        "--include-package",
        action="append",
        default=[],
        metavar="GLOB",
        help="check only repositories (below the prefix) matching GLOB",
    )


def _add_restore(commands: Any, common: argparse.ArgumentParser) -> None:
    restore = commands.add_parser(
        "restore",
        parents=[common],
        help="copy a backup back into a registry",
        description="Copy every repository and tag below --from to the same path below --to, "
        "byte-exact, with the same engine as copy.",
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
    restore.add_argument(
        "--from-report",
        type=Path,
        metavar="FILE",
        help="take the tags from a run's report when --from has no catalog",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="github-org-backup",
        description="Back up container images byte-exact into a registry you own.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common_options()
    _add_copy(commands, common)
    _add_registry(commands, common)
    _add_verify(commands, common)
    _add_restore(commands, common)
    return parser


COMMANDS = {
    "copy": run_copy,
    "registry": run_registry,
    "verify": run_verify,
    "restore": run_restore,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_format, args.log_level)
    command = COMMANDS[args.command]
    try:
        return asyncio.run(command(args))
    except UsageError as exc:
        print(f"github-org-backup: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BackupError as exc:
        log.error("run_failed", error=str(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
