"""The run's summary for people: Markdown for a GitHub Actions job page, a table on a terminal.

Both are drawn from the run's typed report (the copy engine's RunReport, or the repos command's
ReposReport), so they never disagree with it. Much of what they show comes from the source
(package names, tags, a registry's or GitHub's error messages), so every such text is shown
literally: control characters and line breaks flattened, and in Markdown HTML's ``<>&`` as
entities and every other ASCII punctuation mark backslash-escaped, so it can form no link,
image, autolink, heading, table cell, emphasis or HTML on the job page.
"""

from __future__ import annotations

import os
import string
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import assert_never

import structlog

from github_org_backup.output.report import RunReport
from github_org_backup.output.repos_report import ReposReport

log = structlog.get_logger("github_org_backup.output.summary")

STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
_MAX_ROWS = 50  # a job summary is capped at 1 MiB; the report holds the rest
_MAX_CELL = 300  # characters of one cell, before escaping
_HTML = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}
_ESCAPED = frozenset(string.punctuation) - _HTML.keys()  # CommonMark escapes any of these


def plain_text(text: str) -> str:
    """``text`` on one line: control, format (bidi overrides, ANSI's ESC) and line-break
    characters become spaces, so no terminal sequence or Markdown block starts inside it."""
    return "".join(" " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in text)


def markdown_text(text: str, limit: int = _MAX_CELL) -> str:
    """``text`` as Markdown that renders exactly as ``text``, on one line, clipped to ``limit``."""
    flat = plain_text(text)
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return "".join(_HTML.get(c) or (f"\\{c}" if c in _ESCAPED else c) for c in flat)


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Outcome:
    """What the end-of-run table and the job summary show: headline figures, failures, and
    what moved at the source."""

    counts: tuple[tuple[str, str], ...]
    failures: tuple[tuple[str, str], ...]
    moved: tuple[tuple[str, str, str], ...]


Shown = Outcome | RunReport | ReposReport
_META_ROWS = ("issues", "pulls", "releases", "org")


def outcome(report: Shown) -> Outcome:
    """What the summaries show of a run, from its typed report."""
    if isinstance(report, Outcome):
        return report
    if isinstance(report, RunReport):
        return _images_outcome(report)
    if isinstance(report, ReposReport):
        return _repos_outcome(report)
    assert_never(report)  # a report's JSON is not shown: its typed report is


def _images_outcome(report: RunReport) -> Outcome:
    figures = report.counts
    rows = [
        ("images copied", figures.images_copied),
        ("images already current", figures.images_skipped),
        ("images failed", figures.images_failed),
    ]
    if report.discovery is not None:
        rows += [
            ("packages", report.discovery.packages),
            ("packages failed", report.discovery.packages_failed),
        ]
    rows += [("blobs copied", figures.blobs_copied), ("blobs mounted", figures.blobs_mounted)]
    if report.history is not None:
        rows.append(("tags moved", len(report.history.moved)))
    if report.prune is not None and report.prune.pruned is not None:
        rows.append(("tags pruned", len(report.prune.pruned)))
    shown = [(label, str(value)) for label, value in rows]
    shown.append(("bytes copied", human_bytes(figures.bytes_copied)))
    shown.append(("duration", f"{figures.duration_s:.1f} s"))
    broken = [
        *(
            (package.package, package.error or "")
            for package in report.packages or ()
            if package.status == "failed"
        ),
        *((str(image.destination), image.error or "") for image in report.images if image.failed),
    ]
    if report.discovery is not None and report.discovery.error:
        broken.insert(0, ("discovery", report.discovery.error))
    moved = tuple((m.tag, m.was, m.now) for m in report.history.moved) if report.history else ()
    return Outcome(tuple(shown), tuple(broken), moved)


def _repos_outcome(report: ReposReport) -> Outcome:
    figures = report.counts
    rows = [
        ("repositories copied", str(figures.copied)),
        ("repositories unchanged", str(figures.unchanged)),
        ("repositories failed", str(figures.failed)),
        ("refs updated", str(figures.refs_updated)),
    ]
    if report.metadata is not None:
        meta = report.metadata.counts
        rows += [(f"{kind} documents written", str(meta.written(kind))) for kind in _META_ROWS]
        rows += [
            ("assets downloaded", str(meta.assets_downloaded)),
            ("asset bytes", human_bytes(meta.asset_bytes)),
            ("metadata parts failed", str(meta.failed + meta.assets_failed)),
            ("GitHub requests counted", str(meta.requests_counted)),
        ]
    rows.append(("duration", f"{figures.duration_s:.1f} s"))
    broken = [(r.repository, r.error or "") for r in report.repositories if r.status == "failed"]
    if report.metadata is not None:
        broken += [
            (f"{p.scope} {p.kind}", p.error or "")
            for p in report.metadata.parts
            if p.status == "failed"
        ]
    if report.discovery_error:
        broken.insert(0, ("discovery", report.discovery_error))
    moved = tuple(
        (f"{r.repository} {change.ref}", change.old or "", change.new or "deleted")
        for r in report.repositories
        for change in r.ref_changes
        if change.rewritten_at_source
    )
    return Outcome(tuple(rows), tuple(broken), moved)


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> Iterator[str]:
    yield "| " + " | ".join(header) + " |"
    yield "|" + " --- |" * len(header)
    for row in rows[:_MAX_ROWS]:
        yield "| " + " | ".join(markdown_text(c) for c in row) + " |"
    if len(rows) > _MAX_ROWS:
        yield f"\n{len(rows) - _MAX_ROWS} more in the JSON report."


def markdown(command: str, report: Shown, exit_code: int) -> str:
    """A job-summary section: the outcome, the counts, failures and moved tags."""
    shown = outcome(report)
    result = {
        0: "succeeded",
        1: "finished with failures",
        3: "matched nothing (exit 3)",
        143: "was interrupted",
    }.get(exit_code, f"failed (exit {exit_code})")
    icon = {0: ":white_check_mark:", 3: ":warning:"}.get(exit_code, ":x:")
    lines = [f"## {icon} github-org-backup {command} {result}", ""]
    lines += _table(("", "count"), shown.counts)
    broken = shown.failures
    if broken:
        lines += ["", f"### Failures ({len(broken)})", ""]
        lines += _table(("what", "reason"), broken)
    moved = shown.moved
    if moved:
        lines += ["", f"### Moved at the source ({len(moved)})", ""]
        lines += _table(("tag", "was", "now"), moved)
    return "\n".join(lines) + "\n\n"


def append_step_summary(
    command: str,
    report: Shown,
    exit_code: int,
    environ: Mapping[str, str] = os.environ,
) -> None:
    """Append to the file GitHub Actions names in GITHUB_STEP_SUMMARY; a no-op elsewhere."""
    target = environ.get(STEP_SUMMARY_ENV)
    if not target:
        return
    try:
        with Path(target).open("a", encoding="utf-8") as handle:
            handle.write(markdown(command, report, exit_code))
    except OSError as exc:
        log.error("step_summary_failed", path=target, error=exc.strerror)
