"""Command line: flags and environment into one run; exit codes 0 / 1 / 2."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import structlog

from backup import __version__
from backup.auth import Credentials, CredentialStore
from backup.config import RegistryConfig, load_registry_config
from backup.engine import DEFAULT_CONCURRENCY, CopyEngine
from backup.errors import BackupError, UsageError
from backup.github import GitHubPackages
from backup.logs import configure_logging
from backup.plan import plan_package
from backup.reference import parse_reference
from backup.report import Stats, build_report, report_progress, write_report
from backup.session import HttpSettings, open_clients
from backup.specs import CopySpec, parse_specs

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 128 + signal.SIGTERM  # 143, as a process killed by SIGTERM reports

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
        help="destination prefix [BACKUP_DEST], e.g. registry.example.com/ghcr-backup",
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
    return parser


def _copy_specs(args: argparse.Namespace) -> list[CopySpec]:
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
    parse_reference(args.source)  # raise InvalidReference with the reference's own message
    parse_reference(args.destination)
    spec: dict[str, Any] = {"src": args.source, "dst": args.destination}
    if args.platform:
        spec["transform"] = {"limitPlatforms": args.platform}
    return parse_specs(json.dumps(spec))


async def execute(
    specs: Sequence[CopySpec] | AsyncIterator[CopySpec],
    args: argparse.Namespace,
    credentials: dict[str, Credentials] | None = None,
) -> tuple[Stats, dict[str, Any]]:
    """Run the engine over ``specs``; the stats and the report (not yet written)."""
    stats = Stats()
    store = CredentialStore.from_docker_config(explicit=credentials)
    settings = HttpSettings(
        ca_file=args.ca_file,
        connect_timeout_s=args.connect_timeout,
        read_timeout_s=args.read_timeout,
        chunk_size=args.chunk_size,
    )
    async with open_clients(store, settings) as clients:
        engine = CopyEngine(clients, stats, concurrency=args.concurrency)
        progress = asyncio.create_task(report_progress(stats, args.progress_interval))
        loop = asyncio.get_running_loop()

        def on_signal(name: str) -> None:
            log.warning("signal_received", signal=name, grace_period_s=args.grace_period)
            engine.stop()
            loop.call_later(args.grace_period, engine.abort)

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal, sig.name)
        try:
            results = await engine.run(specs)
        finally:
            progress.cancel()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        requests = clients.requests
    extra = {"requests": requests, "interrupted": engine.stopping}
    return stats, build_report(stats, results, extra)


def _finish(args: argparse.Namespace, stats: Stats, report: dict[str, Any], failed: bool) -> int:
    log.info("run_finished", **report["summary"])
    if args.report:
        write_report(args.report, report)
    if report["summary"].get("interrupted"):
        return EXIT_INTERRUPTED
    return EXIT_FAILED if failed or stats.images_failed else EXIT_OK


async def run_copy(args: argparse.Namespace) -> int:
    stats, report = await execute(_copy_specs(args), args)
    return _finish(args, stats, report, failed=False)


class _Discovery:
    """Feeds specs to the engine as packages are listed; remembers why discovery stopped."""

    def __init__(self, github: GitHubPackages, config: RegistryConfig) -> None:
        self.github = github
        self.config = config
        self.packages = 0
        self.error: BackupError | None = None

    async def specs(self) -> AsyncIterator[CopySpec]:
        try:
            async for package in self.github.packages(self.config.wants):
                self.packages += 1
                plan = plan_package(package, self.config)
                if plan.error:
                    log.error("package_skipped", package=package.name, error=plan.error)
                for spec in plan.specs:
                    yield spec
        except BackupError as exc:
            self.error = exc

    def summary(self) -> dict[str, Any]:
        return {
            "packages": self.packages,
            "github_requests": self.github.pages_requested,
            "github_rate_limit_remaining": self.github.rate_limit_remaining,
            "discovery_truncated": self.github.truncated,
            "discovery_error": str(self.error) if self.error else None,
        }


async def run_registry(args: argparse.Namespace) -> int:
    config = load_registry_config(args)
    github = GitHubPackages(config.owner, config.token, config.api_url)
    try:
        if args.dry_run or args.emit_specs:
            async for package in github.packages(config.wants):
                plan = plan_package(package, config)
                if args.dry_run:
                    print(plan.render(), flush=True)
                for spec in plan.specs if args.emit_specs else ():
                    print(json.dumps(spec.to_json()), flush=True)
            return EXIT_FAILED if github.truncated else EXIT_OK
        discovery = _Discovery(github, config)
        stats, report = await execute(discovery.specs(), args, config.credentials())
        report["summary"] |= discovery.summary()
        if isinstance(discovery.error, UsageError) and stats.images_total == 0:
            raise discovery.error
        if discovery.error:
            log.error("discovery_failed", error=str(discovery.error))
        failed = discovery.error is not None or github.truncated
        return _finish(args, stats, report, failed)
    finally:
        github.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_format, args.log_level)
    command = run_copy if args.command == "copy" else run_registry
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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] if len(sys.argv) > 1 else None))
