"""Progress says failures apart: 8 images that all failed never read as 8/8 done and nothing
more, on the live display or in the JSON progress events."""

from __future__ import annotations

import asyncio
import io
import sys

import pytest
import structlog

from github_org_backup.output.progress import live_display, show_progress
from github_org_backup.output.report import Stats, report_progress


async def _drawn(monkeypatch: pytest.MonkeyPatch, stats: Stats) -> str:
    """The live display's text for ``stats``, as it stands after a few redraws."""
    screen = io.StringIO()
    monkeypatch.setattr(sys, "stderr", screen)
    shown = asyncio.create_task(show_progress(stats, terminal=True, interval_s=1))
    await asyncio.sleep(0.3)
    shown.cancel()
    with pytest.raises(asyncio.CancelledError):
        await shown
    return screen.getvalue()


async def test_the_bar_says_how_many_of_the_done_images_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = await _drawn(monkeypatch, Stats(images_total=8, images_failed=8))
    assert "8/8" in text and "8 failed" in text


async def test_some_failed_among_those_done(monkeypatch: pytest.MonkeyPatch) -> None:
    stats = Stats(images_total=8, images_copied=5, images_skipped=1, images_failed=2)
    text = await _drawn(monkeypatch, stats)
    assert "8/8" in text and "2 failed" in text


async def test_a_clean_run_shows_no_failure_count(monkeypatch: pytest.MonkeyPatch) -> None:
    text = await _drawn(monkeypatch, Stats(images_total=8, images_copied=8))
    assert "8/8" in text and "failed" not in text


async def test_a_job_without_a_failure_count_still_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    """repos passes (done, total, bytes): the bar is drawn as before."""
    screen = io.StringIO()
    monkeypatch.setattr(sys, "stderr", screen)
    shown = asyncio.create_task(live_display(lambda: (3, 4, 0), "repositories"))
    await asyncio.sleep(0.3)
    shown.cancel()
    with pytest.raises(asyncio.CancelledError):
        await shown
    assert "3/4" in screen.getvalue() and "failed" not in screen.getvalue()


async def test_the_progress_event_counts_failed_images_apart() -> None:
    stats = Stats(images_total=8, images_copied=1, images_failed=7, bytes_transferred=2048)
    with structlog.testing.capture_logs() as events:
        reporting = asyncio.create_task(report_progress(stats, interval_s=0.01))
        await asyncio.sleep(0.1)
        reporting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reporting
    progress = [e for e in events if e["event"] == "progress"]
    assert progress
    assert progress[-1]["images_done"] == 8 and progress[-1]["images_total"] == 8
    assert progress[-1]["images_failed"] == 7
    assert progress[-1]["bytes_transferred"] == 2048 and progress[-1]["bytes_copied"] == 0
