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
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

import structlog

from github_org_backup.base.logs import configure_logging
from github_org_backup.base.redact import redact_text
from github_org_backup.commands import (
    EXIT_FAILED,
    EXIT_USAGE,
    run_copy,
    run_registry,
    run_repos,
    run_restore,
    run_snapshots,
    run_verify,
    run_verify_repos,
)
from github_org_backup.errors import BackupError, OutputError, UsageError
from github_org_backup.settings.images import (
    copy_options,
    registry_options,
    restore_options,
    snapshots_options,
    verify_options,
)
from github_org_backup.settings.parser import build_parser
from github_org_backup.settings.repos import repos_options, verify_repos_options

__all__ = ["COMMANDS", "EXIT_CRASHED", "EXIT_PIPE_CLOSED", "build_parser", "main"]

log = structlog.get_logger("github_org_backup.cli")

EXIT_CRASHED = 70  # EX_SOFTWARE: an internal error, not the input's fault
EXIT_PIPE_CLOSED = 128 + 13  # 141, as `git log | head` ends when killed by SIGPIPE
Options = TypeVar("Options")

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
    except OutputError as exc:  # after the work: what was done stays done
        log.error("run_failed", error=str(exc))
        return EXIT_FAILED
    except BackupError as exc:  # credentials refused, a registry unreachable: nothing can go on
        log.error("run_failed", error=str(exc))
        return EXIT_USAGE
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
