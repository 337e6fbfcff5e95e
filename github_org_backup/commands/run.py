"""What every command that copies shares: the engine run with its progress and signals, and
the end of a run (report, summaries, metrics, exit code)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import structlog

from github_org_backup.copy.engine import CopyEngine
from github_org_backup.model.specs import CopySpec
from github_org_backup.output.progress import print_summary_table, show_progress
from github_org_backup.output.report import Stats, build_report, write_report
from github_org_backup.output.summary import append_step_summary
from github_org_backup.settings.options import Output, RunControl
from github_org_backup.stores.factory import Clients

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 128 + signal.SIGTERM  # 143, as a process killed by SIGTERM reports

log = structlog.get_logger("github_org_backup.commands")


async def execute(
    specs: Sequence[CopySpec] | AsyncIterator[CopySpec],
    clients: Clients,
    output: Output,
    run: RunControl,
    on_stop: Callable[[], None] | None = None,
) -> tuple[Stats, dict[str, Any]]:
    """Run the engine over ``specs``; the stats and the report (not yet written).

    ``on_stop`` is called on SIGTERM/SIGINT, e.g. to abandon a discovery that feeds ``specs``.
    """
    stats = Stats()
    before = clients.requests
    engine = CopyEngine(clients, stats, concurrency=run.concurrency, limits=clients.limits)
    progress = asyncio.create_task(
        show_progress(stats, terminal=output.terminal, interval_s=run.progress_interval_s)
    )
    loop = asyncio.get_running_loop()

    def on_signal(name: str) -> None:
        log.warning("signal_received", signal=name, grace_period_s=run.grace_period_s)
        engine.stop()
        if on_stop is not None:
            on_stop()
        loop.call_later(run.grace_period_s, engine.abort)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig.name)
    try:
        results = await engine.run(specs)
    finally:
        progress.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await progress  # the live display draws its last frame before the summary
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    requests = {h: n - before.get(h, 0) for h, n in clients.requests.items()}
    extra = {"requests": requests, "interrupted": engine.stopping}
    return stats, build_report(stats, results, extra)


def finish(
    output: Output, run: RunControl, stats: Stats, report: dict[str, Any], failed: bool
) -> int:
    """Log, write and publish what the run did; its exit code."""
    summary = report["summary"]
    log.info("run_finished", **summary)
    if output.report:
        write_report(output.report, report)
    if summary.get("interrupted"):
        code = EXIT_INTERRUPTED
    else:
        code = EXIT_FAILED if failed or stats.images_failed else EXIT_OK
    if output.terminal:
        print_summary_table(output.command, report, code)
    append_step_summary(output.command, report, code)
    if run.metrics.wanted:
        from github_org_backup.output.metrics import publish  # prometheus_client only when asked

        publish(run.metrics, summary, succeeded=code == EXIT_OK)
    return code
