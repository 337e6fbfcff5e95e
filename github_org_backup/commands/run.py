"""One run's lifecycle, for every command that works through a job: signals and their grace
period, progress while it works, and its end (the report, the summaries, metrics, exit code).

A job is an async work function plus how to stop it::

    life = Lifecycle(output, run)
    result = await life.supervise(
        job.work(), stop=job.stop, abort=job.abort, progress=lambda: live_display(job.read)
    )
    report = ...  # anything with to_json() -> {"summary": {...}, ...}
    return life.finish(report, failed=..., interrupted=job.stopping, outcome=..., publish=...)

``supervise`` runs the work with SIGTERM/SIGINT handled: the first signal calls ``stop`` (start
nothing new) and, after the grace period, ``abort`` (abandon what is in flight); a second signal
aborts at once (``grace_period_cut``); the progress
display is drawn until the work ends. ``finish`` logs ``run_finished``, writes the report, draws
the summary table and the job summary, publishes metrics, and returns the exit code.

``execute`` and ``finish`` are that lifecycle for the copy engine (registry, copy and
restore); another job (the repos command) brings its own work, report and metrics job.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import structlog

# The codes live below the commands (base.exits); the commands read them here.
from github_org_backup.base.exits import EXIT_EMPTY as EXIT_EMPTY
from github_org_backup.base.exits import EXIT_FAILED as EXIT_FAILED
from github_org_backup.base.exits import EXIT_OK as EXIT_OK
from github_org_backup.base.exits import EXIT_USAGE as EXIT_USAGE
from github_org_backup.copy.engine import CopyEngine
from github_org_backup.model.specs import CopySpec
from github_org_backup.output.progress import print_summary_table, show_progress
from github_org_backup.output.report import RunReport, Stats, write_report
from github_org_backup.output.summary import Outcome, append_step_summary, outcome
from github_org_backup.settings.options import Output, RunControl
from github_org_backup.stores.factory import Clients

if TYPE_CHECKING:
    from github_org_backup.output.metrics import MetricsTargets

EXIT_INTERRUPTED = 128 + signal.SIGTERM  # 143, as a process killed by SIGTERM reports

log = structlog.get_logger("github_org_backup.commands")

CUT_SHORT = "abandoned: a second signal cut the grace period short"

T = TypeVar("T")


class Finished(Protocol):
    """What a job reports at its end: its JSON, whose ``summary`` the last log event repeats."""

    def to_json(self) -> dict[str, Any]: ...


@contextlib.contextmanager
def signals_handled(
    run: RunControl,
    stop: Callable[[], None],
    abort: Callable[[], None],
    cut: Callable[[], None] | None = None,
) -> Iterator[None]:
    """Within the block, SIGTERM/SIGINT call ``stop``, then ``abort`` after the grace period;
    a second signal cuts the grace period short and calls ``cut`` (default ``abort``) at once,
    as docker and skopeo do on a second Ctrl-C."""
    loop = asyncio.get_running_loop()
    pending: list[asyncio.TimerHandle] = []
    aborted = False

    def end(then: Callable[[], None]) -> None:
        nonlocal aborted
        if not aborted:
            aborted = True
            then()

    def on_signal(name: str) -> None:
        if not pending:
            log.warning("signal_received", signal=name, grace_period_s=run.grace_period_s)
            stop()
            pending.append(loop.call_later(run.grace_period_s, end, abort))
            return
        pending[0].cancel()
        if not aborted:
            log.warning("grace_period_cut", signal=name, reason="a second signal")
        end(cut or abort)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig.name)
    try:
        yield
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        for handle in pending:
            handle.cancel()


class Lifecycle:
    """One run of one command: ``supervise`` its work, then ``finish`` it."""

    def __init__(self, output: Output, run: RunControl) -> None:
        self.output = output
        self.run = run

    async def supervise(
        self,
        work: Awaitable[T],
        *,
        stop: Callable[[], None],
        abort: Callable[[], None],
        progress: Callable[[], Coroutine[Any, Any, None]] | None = None,
        cut: Callable[[], None] | None = None,
    ) -> T:
        """``work``'s result, with signals handled and ``progress`` drawn until it ends;
        ``cut`` is ``abort`` for a second signal (default: ``abort`` itself)."""
        shown = asyncio.create_task(progress()) if progress is not None else None
        try:
            with signals_handled(self.run, stop, abort, cut):
                return await work
        finally:
            if shown is not None:
                shown.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await shown  # the live display draws its last frame before the summary

    def finish(
        self,
        report: Finished,
        *,
        failed: bool,
        interrupted: bool,
        outcome: Outcome,
        publish: Callable[[MetricsTargets, bool], None] | None = None,
        empty: bool = False,
        doomed: bool = False,
    ) -> int:
        """Log, write and publish what the run did; its exit code: 143 if ``interrupted``,
        else 2 if ``doomed`` (the run could not go on), else 1 if ``failed``, else 3 if
        ``empty`` (nothing matched, and no --allow-empty), else 0. ``publish`` sends the
        metrics, when they are wanted."""
        document = report.to_json()
        log.info("run_finished", **document["summary"])
        if self.output.report:
            write_report(self.output.report, document)
        code = (
            EXIT_INTERRUPTED
            if interrupted
            else EXIT_USAGE
            if doomed
            else EXIT_FAILED
            if failed
            else EXIT_EMPTY
            if empty
            else EXIT_OK
        )
        if self.output.terminal:
            print_summary_table(self.output.command, outcome, code)
        append_step_summary(self.output.command, outcome, code)
        if self.run.metrics.wanted and publish is not None:
            publish(self.run.metrics, code == EXIT_OK)
        return code


async def execute(
    specs: Sequence[CopySpec] | AsyncIterator[CopySpec],
    clients: Clients,
    output: Output,
    run: RunControl,
    on_stop: Callable[[], None] | None = None,
) -> RunReport:
    """Run the engine over ``specs``; its report (not yet written).

    ``on_stop`` is called on SIGTERM/SIGINT, e.g. to abandon a discovery that feeds ``specs``.
    """
    stats = Stats()
    before = clients.requests
    engine = CopyEngine(
        clients,
        stats,
        concurrency=run.concurrency,
        limits=clients.limits,
        # Unless the operator fixed it, the link may ask for more copies in flight.
        ceiling=None if run.fixed else clients.connections_per_host,
    )

    def stop() -> None:
        engine.stop()
        if on_stop is not None:
            on_stop()

    results = await Lifecycle(output, run).supervise(
        engine.run(specs),
        stop=stop,
        abort=engine.abort,
        cut=lambda: engine.abort(CUT_SHORT),
        progress=lambda: show_progress(
            stats, terminal=output.terminal, interval_s=run.progress_interval_s
        ),
    )
    requests = {h: n - before.get(h, 0) for h, n in clients.requests.items()}
    return RunReport(
        stats.freeze(), tuple(results), requests, engine.stopping, no_access=engine.access_failures
    )


def finish(
    output: Output,
    run: RunControl,
    report: RunReport,
    failed: bool,
    *,
    empty: bool = False,
    doomed: bool = False,
) -> int:
    """The end of a run of the copy engine: 2 if ``doomed`` or every image failed for want of
    access, 1 if ``failed`` or an image failed, 3 if
    ``empty`` (and nothing failed)."""

    def publish(targets: MetricsTargets, succeeded: bool) -> None:
        from github_org_backup.output.metrics import IMAGES
        from github_org_backup.output.metrics import publish as send

        send(targets, report, succeeded, IMAGES)

    return Lifecycle(output, run).finish(
        report,
        failed=failed or report.any_failed,
        interrupted=report.interrupted,
        outcome=outcome(report),
        publish=publish,
        empty=empty,
        doomed=doomed or report.doomed,
    )
