"""Progress while a run works: a live display on a terminal, periodic log events elsewhere.

The live display is drawn with rich, which redraws one region of the terminal in place and
prints log lines above it; off a terminal the output stays machine-readable JSON lines.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from github_org_backup.output.report import Stats, report_progress
from github_org_backup.output.summary import Shown, human_bytes, outcome, plain_text

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

_REDRAW_S = 0.25
_RATE_WINDOW_S = 5.0


def on_terminal(log_format: str) -> bool:
    """True when a person is watching: stderr is a TTY and the logs are not forced to JSON."""
    return log_format != "json" and sys.stderr.isatty()


def _console() -> Console:
    from rich.console import Console  # rich loads only when a person is watching

    return Console(file=sys.stderr, stderr=True)


async def show_progress(stats: Stats, *, terminal: bool, interval_s: float) -> None:
    """Run until cancelled: the live display on a terminal, else a `progress` event per interval."""
    if not terminal:
        await report_progress(stats, interval_s)
        return
    await live_display(
        lambda: (
            stats.images_done,
            stats.images_total,
            stats.bytes_transferred,
            stats.images_failed,
        )
    )


Tally = tuple[int, int, int] | tuple[int, int, int, int]


def _figures(tally: Tally) -> tuple[int, int, int, int]:
    done, total, count, *failed = tally
    return done, total, count, failed[0] if failed else 0


def failed_text(failed: int) -> str:
    """What the bar adds when some of the done ones failed: done alone would read as success."""
    return f"[bold red]{failed} failed[/]" if failed else ""


async def live_display(read: Callable[[], Tally], what: str = "images") -> None:
    """Redraw ``what`` done of total, how many of them failed, bytes, rate, elapsed and ETA
    until cancelled.

    ``read`` returns (done, total, bytes so far[, failed]); done counts the failed ones too;
    a total of 0 means not yet known.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        SpinnerColumn(),
        TextColumn(what),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]}"),
        TextColumn("{task.fields[bytes]}  {task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    samples: list[tuple[float, int]] = []
    with Progress(*columns, console=_console(), transient=False) as progress:
        task = progress.add_task(what, total=None, bytes="", rate="", failed="")
        try:
            while True:
                done, total, count, failed = _figures(read())
                now = time.monotonic()
                samples.append((now, count))
                while samples and samples[0][0] < now - _RATE_WINDOW_S:
                    samples.pop(0)
                span = now - samples[0][0]
                rate = (count - samples[0][1]) / span if span > 0 else 0.0
                progress.update(
                    task,
                    completed=done,
                    total=total or None,
                    failed=failed_text(failed),
                    bytes=human_bytes(count) if count else "",
                    rate=f"{human_bytes(rate)}/s" if count else "",
                )
                await asyncio.sleep(_REDRAW_S)
        finally:
            done, total, count, failed = _figures(read())
            progress.update(
                task,
                completed=done,
                total=total or done,
                failed=failed_text(failed),
                bytes=human_bytes(count) if count else "",
            )


def _literal(text: str) -> Text:
    """Source-supplied text as rich shows it verbatim: no ``[markup]``, no terminal sequence."""
    from rich.text import Text

    return Text(plain_text(text))


def print_summary_table(command: str, report: Shown, exit_code: int) -> None:
    """The end-of-run table on a terminal, with the failures and moved tags below it."""
    from rich.table import Table

    shown = outcome(report)
    console = _console()
    status = {0: "succeeded", 3: "matched nothing (exit 3)"}.get(exit_code, f"exit {exit_code}")
    table = Table(title=f"github-org-backup {command}: {status}", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    for label, value in shown.counts:
        table.add_row(label, value)
    console.print(table)
    broken = shown.failures
    if broken:
        details = Table(title=f"failures ({len(broken)})", show_lines=False)
        details.add_column("what", overflow="fold")
        details.add_column("reason", overflow="fold")
        for what, why in broken:
            details.add_row(_literal(what), _literal(why))
        console.print(details)
    moved = shown.moved
    if moved:
        table = Table(title=f"moved at the source ({len(moved)})")
        for column in ("tag", "was", "now"):
            table.add_column(column, overflow="fold")
        for row in moved:
            table.add_row(*(_literal(cell) for cell in row))
        console.print(table)
