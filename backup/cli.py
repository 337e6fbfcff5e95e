"""Command line: flags and environment into one run, exit codes 0 / 1 / 2."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

from backup import __version__
from backup.auth import CredentialStore
from backup.engine import DEFAULT_CONCURRENCY, CopyEngine
from backup.errors import BackupError, UsageError
from backup.logs import configure_logging
from backup.reference import parse_reference
from backup.report import Stats, build_report, report_progress, write_report
from backup.session import HttpSettings, open_clients
from backup.specs import CopySpec, parse_specs, validate_specs

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

log = structlog.get_logger("backup.cli")


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
        "--progress-interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="seconds between progress lines (default %(default)s)",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="github-org-backup",
        description="Back up container images byte-exact into a registry you own.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    copy = commands.add_parser(
        "copy",
        parents=[_common_options()],
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
    return parser


def _specs_from_args(args: argparse.Namespace) -> list[CopySpec]:
    if args.specs is not None:
        if args.source or args.destination or args.platform:
            raise UsageError("give either SRC DST (with --platform) or --specs FILE, not both")
        try:
            text = sys.stdin.read() if args.specs == "-" else Path(args.specs).read_text()
        except OSError as exc:
            raise UsageError(f"cannot read specs {args.specs}: {exc.strerror}") from None
        return parse_specs(text)
    if not (args.source and args.destination):
        raise UsageError("copy needs SRC and DST, or --specs FILE")
    spec: dict[str, Any] = {"src": args.source, "dst": args.destination}
    if args.platform:
        spec["transform"] = {"limitPlatforms": args.platform}
    parse_reference(args.source)  # raise InvalidReference with the reference's own message
    parse_reference(args.destination)
    return parse_specs(json.dumps(spec))


async def execute(
    specs: list[CopySpec], args: argparse.Namespace, extra: dict[str, Any] | None = None
) -> int:
    """Run the engine over ``specs`` and write the report; the exit code of the run."""
    stats = Stats()
    credentials = CredentialStore.from_docker_config()
    settings = HttpSettings(ca_file=args.ca_file)
    async with open_clients(credentials, settings) as clients:
        engine = CopyEngine(clients, stats, concurrency=args.concurrency)
        progress = asyncio.create_task(report_progress(stats, args.progress_interval))
        try:
            results = await engine.run(validate_specs(specs))
        finally:
            progress.cancel()
        requests = clients.requests
    summary_extra = {"requests": requests} | (extra or {})
    report = build_report(stats, results, summary_extra)
    log.info("run_finished", **report["summary"])
    if args.report:
        write_report(args.report, report)
    return EXIT_FAILED if stats.images_failed else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_format, args.log_level)
    try:
        specs = _specs_from_args(args)
        return asyncio.run(execute(specs, args))
    except UsageError as exc:
        print(f"github-org-backup: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BackupError as exc:
        log.error("run_failed", error=str(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
