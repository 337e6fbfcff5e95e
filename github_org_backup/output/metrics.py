"""Prometheus metrics for a finished run: pushed to a Pushgateway and/or written as a textfile.

``github_org_backup_last_success_timestamp_seconds`` moves only when a run succeeds: a failed
run leaves the previous value in place, so an alert on its age catches a string of failures.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import structlog
from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway, write_to_textfile

from github_org_backup.base.redact import redact_url
from github_org_backup.output.metadata_report import COUNTED_KINDS, MetadataCounts
from github_org_backup.output.report import RunReport
from github_org_backup.output.repos_report import ReposReport

log = structlog.get_logger("github_org_backup.output.metrics")

PREFIX = "github_org_backup"
JOB = "github-org-backup"


@dataclass(frozen=True)
class MetricsTargets:
    """Where a run's Prometheus metrics go; the shard labels them."""

    pushgateway: str | None = None
    textfile: Path | None = None
    shard: str = "all"

    @property
    def wanted(self) -> bool:
        return bool(self.pushgateway or self.textfile)


R = TypeVar("R")


@dataclass(frozen=True)
class Job(Generic[R]):
    """One kind of run's metrics: its Pushgateway job, its name prefix, its own gauges, and
    its duration, all read from what that kind of run reports (``R``)."""

    name: str
    prefix: str
    gauges: Callable[[CollectorRegistry, str, R], None]
    duration_s: Callable[[R], float]


def _gauge(registry: CollectorRegistry, name: str, help_text: str, value: float) -> None:
    Gauge(name, help_text, registry=registry).set(value)


def _by(
    registry: CollectorRegistry, name: str, help_text: str, label: str, values: dict[str, float]
) -> None:
    """One gauge with a label, a value per label value."""
    gauge = Gauge(name, help_text, [label], registry=registry)
    for key, value in values.items():
        gauge.labels(key).set(value)


def _image_gauges(registry: CollectorRegistry, prefix: str, report: RunReport) -> None:
    figures = report.counts
    _by(
        registry,
        f"{prefix}_images",
        "Images in the last run, by outcome",
        "outcome",
        {
            "copied": figures.images_copied,
            "skipped": figures.images_skipped,
            "failed": figures.images_failed,
        },
    )
    _by(
        registry,
        f"{prefix}_blobs",
        "Blobs in the last run, by outcome",
        "outcome",
        {
            "copied": figures.blobs_copied,
            "mounted": figures.blobs_mounted,
            "skipped": figures.blobs_skipped,
        },
    )
    _gauge(
        registry,
        f"{prefix}_bytes_copied",
        "Blob bytes that crossed the network in the last run",
        figures.bytes_copied,
    )
    if report.history is not None:
        _gauge(
            registry,
            f"{prefix}_tags_moved",
            "Tags the source pointed at a different digest since the previous snapshot",
            len(report.history.moved),
        )
    remaining = report.discovery.github_rate_limit_remaining if report.discovery else None
    if remaining is not None:
        _gauge(
            registry,
            f"{prefix}_github_rate_limit_remaining",
            "GitHub API requests left this hour",
            remaining,
        )


def _repos_gauges(registry: CollectorRegistry, prefix: str, report: ReposReport) -> None:
    figures = report.counts
    _by(
        registry,
        f"{prefix}_repositories",
        "Repositories in the last run, by outcome",
        "outcome",
        {"copied": figures.copied, "unchanged": figures.unchanged, "failed": figures.failed},
    )
    _gauge(
        registry,
        f"{prefix}_refs_updated",
        "Refs created, moved or deleted in the last run",
        figures.refs_updated,
    )
    _gauge(
        registry,
        f"{prefix}_refs_kept",
        "Rewound or deleted tips kept under refs/backup/",
        figures.refs_kept,
    )
    if report.metadata is not None:
        _metadata_gauges(registry, prefix, report.metadata.counts)


def _metadata_gauges(registry: CollectorRegistry, prefix: str, counts: MetadataCounts) -> None:
    _by(
        registry,
        f"{prefix}_metadata_documents_written",
        "Metadata documents written in the last run, by kind",
        "kind",
        {kind: counts.written(kind) for kind in COUNTED_KINDS},
    )
    _by(
        registry,
        f"{prefix}_metadata_assets",
        "Release assets in the last run, by outcome",
        "outcome",
        {
            "downloaded": counts.assets_downloaded,
            "held": counts.assets_held,
            "failed": counts.assets_failed,
        },
    )
    _gauge(
        registry,
        f"{prefix}_metadata_asset_bytes",
        "Release asset bytes downloaded in the last run",
        counts.asset_bytes,
    )
    _gauge(
        registry,
        f"{prefix}_metadata_failed",
        "Metadata parts that failed in the last run",
        counts.failed,
    )
    _gauge(
        registry,
        f"{prefix}_metadata_github_requests_counted",
        "GitHub requests of the last run that count against the rate limit (not 304)",
        counts.requests_counted,
    )


IMAGES: Job[RunReport] = Job(JOB, PREFIX, _image_gauges, lambda r: r.counts.duration_s)
# Names of their own, so the two jobs never overwrite each other's gauges.
REPOS: Job[ReposReport] = Job(
    f"{JOB}-repos", f"{PREFIX}_repos", _repos_gauges, lambda r: r.counts.duration_s
)


def _registry(
    job: Job[R], report: R, succeeded: bool, last_success: float | None
) -> CollectorRegistry:
    registry = CollectorRegistry()
    job.gauges(registry, job.prefix, report)
    _gauge(
        registry,
        f"{job.prefix}_duration_seconds",
        "Duration of the last run",
        job.duration_s(report),
    )
    _gauge(
        registry,
        f"{job.prefix}_last_run_success",
        "1 if the last run succeeded, else 0",
        1 if succeeded else 0,
    )
    if last_success is not None:
        _gauge(
            registry,
            f"{job.prefix}_last_success_timestamp_seconds",
            "End of the last successful run",
            last_success,
        )
    return registry


def _previous_success(job: Job[Any], textfile: Path) -> float | None:
    try:
        text = textfile.read_text()
    except OSError:
        return None
    found = re.search(rf"^{job.prefix}_last_success_timestamp_seconds (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def publish(targets: MetricsTargets, report: R, succeeded: bool, job: Job[R]) -> None:
    """Publish the run's metrics; a failure to publish is logged, never fatal to the run."""
    now = time.time()
    if targets.textfile is not None:
        last = now if succeeded else _previous_success(job, targets.textfile)
        try:
            write_to_textfile(str(targets.textfile), _registry(job, report, succeeded, last))
        except OSError as exc:
            log.error("metrics_write_failed", path=str(targets.textfile), error=str(exc))
    if targets.pushgateway is not None:
        # pushadd replaces only the metrics sent: a failed run leaves last_success alone.
        registry = _registry(job, report, succeeded, now if succeeded else None)
        try:
            pushadd_to_gateway(
                targets.pushgateway,
                job=job.name,
                registry=registry,
                grouping_key={"shard": targets.shard},
                timeout=30,
            )
        except OSError as exc:
            log.error(
                "metrics_push_failed",
                pushgateway=redact_url(targets.pushgateway),
                error=type(exc).__name__,
            )
