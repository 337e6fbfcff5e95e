"""Command line: the parser built from the declarations (settings.parser), dispatch to the
command, and the exit codes (settings.commands.EXIT_CODES): 0 / 1 / 3 / 143 from the commands,
2 for a usage error or any error that ends the whole run, 70 a bug, 130 SIGINT before a run
could stop in order, 141 the reader went away."""

from __future__ import annotations

import argparse
import asyncio
import os
import select
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from github_org_backup.base.exits import EXIT_FAILED, EXIT_USAGE
from github_org_backup.errors import BackupError, OutputError, UsageError
from github_org_backup.settings.parser import build_parser

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

__all__ = ["COMMANDS", "EXIT_CRASHED", "EXIT_PIPE_CLOSED", "build_parser", "main"]

EXIT_CRASHED = 70  # EX_SOFTWARE: an internal error, not the input's fault
EXIT_PIPE_CLOSED = 128 + 13  # 141, as `git log | head` ends when killed by SIGPIPE

Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]

# Each command imports its options builder and its module when it is dispatched, not before:
# --help and --version load neither aiohttp nor PyGithub, requests or rich.


async def _copy(args: argparse.Namespace) -> int:
    from github_org_backup.commands.copy import run_copy
    from github_org_backup.settings.images import copy_options

    return await run_copy(copy_options(args))


async def _registry(args: argparse.Namespace) -> int:
    from github_org_backup.commands.registry import run_registry
    from github_org_backup.settings.images import registry_options

    return await run_registry(registry_options(args))


async def _verify(args: argparse.Namespace) -> int:
    """verify checks git mirrors with --repos, image backups otherwise."""
    if args.repos is not None:
        from github_org_backup.commands.repos import run_verify_repos
        from github_org_backup.settings.repos import verify_repos_options

        return await run_verify_repos(verify_repos_options(args))
    from github_org_backup.commands.verify import run_verify
    from github_org_backup.settings.images import verify_options

    return await run_verify(verify_options(args))


async def _restore(args: argparse.Namespace) -> int:
    from github_org_backup.commands.restore import run_restore
    from github_org_backup.settings.images import restore_options

    return await run_restore(restore_options(args))


async def _snapshots(args: argparse.Namespace) -> int:
    from github_org_backup.commands.snapshots import run_snapshots
    from github_org_backup.settings.images import snapshots_options

    return await run_snapshots(snapshots_options(args))


async def _repos(args: argparse.Namespace) -> int:
    from github_org_backup.commands.repos import run_repos
    from github_org_backup.settings.repos import repos_options

    return await run_repos(repos_options(args))


async def _restore_metadata(args: argparse.Namespace) -> int:
    from github_org_backup.commands.restore_metadata import run_restore_metadata
    from github_org_backup.settings.restore_metadata import restore_metadata_options

    return await run_restore_metadata(restore_metadata_options(args))


COMMANDS: dict[str, Command] = {
    "copy": _copy,
    "registry": _registry,
    "verify": _verify,
    "restore": _restore,
    "snapshots": _snapshots,
    "repos": _repos,
    "restore-metadata": _restore_metadata,
}


def _log() -> FilteringBoundLogger:
    import structlog  # loaded with the logging set-up, after the command line is parsed

    logger: FilteringBoundLogger = structlog.get_logger("github_org_backup.cli")
    return logger


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # --help and --version end here
    from github_org_backup.base.logs import configure_logging

    configure_logging(args.log_format, args.log_level)
    from github_org_backup.base.imports import aiohttp_without_tls_defaults

    aiohttp_without_tls_defaults()
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
    except OutputError as exc:  # after the work: what was done stays done
        _log().error("run_failed", error=str(exc))
        return EXIT_FAILED
    except BackupError as exc:  # credentials refused, a registry unreachable: nothing can go on
        _log().error("run_failed", error=str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except Exception:
        return _crashed()


def _crashed() -> int:
    """A bug: one JSON event with the traceback of the exception being handled, never a bare
    traceback."""
    from github_org_backup.base.redact import redact_text

    exc = sys.exc_info()[1]
    _log().critical(
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
