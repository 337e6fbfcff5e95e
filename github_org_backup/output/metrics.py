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
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway, write_to_textfile

from github_org_backup.base.redact import redact_url

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


@dataclass(frozen=True)
class Job:
    """One kind of run's metrics: its Pushgateway job, its name prefix, and its own gauges."""

    name: str
    prefix: str
    gauges: Callable[[CollectorRegistry, str, dict[str, Any]], None]


def _image_gauges(registry: CollectorRegistry, prefix: str, summary: dict[str, Any]) -> None:
    images = Gauge(
        f"{prefix}_images", "Images in the last run, by outcome", ["outcome"], registry=registry
    )
    for outcome in ("copied", "skipped", "failed"):
        images.labels(outcome).set(summary.get(f"images_{outcome}", 0))
    blobs = Gauge(
        f"{prefix}_blobs", "Blobs in the last run, by outcome", ["outcome"], registry=registry
    )
    for outcome in ("copied", "mounted", "skipped"):
        blobs.labels(outcome).set(summary.get(f"blobs_{outcome}", 0))
    Gauge(
        f"{prefix}_bytes_copied",
        "Blob bytes that crossed the network in the last run",
        registry=registry,
    ).set(summary.get("bytes_copied", 0))
    if summary.get("tags_moved") is not None:
        Gauge(
            f"{prefix}_tags_moved",
            "Tags the source pointed at a different digest since the previous snapshot",
            registry=registry,
        ).set(summary["tags_moved"])
    if summary.get("github_rate_limit_remaining") is not None:
        Gauge(
            f"{prefix}_github_rate_limit_remaining",
            "GitHub API requests left this hour",
            registry=registry,
        ).set(summary["github_rate_limit_remaining"])


def _repos_gauges(registry: CollectorRegistry, prefix: str, summary: dict[str, Any]) -> None:
    repos = Gauge(
        f"{prefix}_repositories",
        "Repositories in the last run, by outcome",
        ["outcome"],
        registry=registry,
    )
    for outcome in ("copied", "unchanged", "failed"):
        repos.labels(outcome).set(summary.get(f"repositories_{outcome}", 0))
    Gauge(
        f"{prefix}_refs_updated",
        "Refs created, moved or deleted in the last run",
        registry=registry,
    ).set(summary.get("refs_updated", 0))
    Gauge(
        f"{prefix}_refs_kept", "Rewound or deleted tips kept under refs/backup/", registry=registry
    ).set(summary.get("refs_kept", 0))


IMAGES = Job(JOB, PREFIX, _image_gauges)
# Names of their own, so the two jobs never overwrite each other's gauges.
REPOS = Job(f"{JOB}-repos", f"{PREFIX}_repos", _repos_gauges)


def _registry(
    job: Job, summary: dict[str, Any], succeeded: bool, last_success: float | None
) -> CollectorRegistry:
    registry = CollectorRegistry()
    job.gauges(registry, job.prefix, summary)
    Gauge(f"{job.prefix}_duration_seconds", "Duration of the last run", registry=registry).set(
        summary.get("duration_s", 0)
    )
    Gauge(
        f"{job.prefix}_last_run_success", "1 if the last run succeeded, else 0", registry=registry
    ).set(1 if succeeded else 0)
    if last_success is not None:
        Gauge(
            f"{job.prefix}_last_success_timestamp_seconds",
            "End of the last successful run",
            registry=registry,
        ).set(last_success)
    return registry


def _previous_success(job: Job, textfile: Path) -> float | None:
    try:
        text = textfile.read_text()
    except OSError:
        return None
    found = re.search(rf"^{job.prefix}_last_success_timestamp_seconds (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def publish(
    targets: MetricsTargets, summary: dict[str, Any], succeeded: bool, job: Job = IMAGES
) -> None:
    """Publish the run's metrics; a failure to publish is logged, never fatal to the run."""
    now = time.time()
    if targets.textfile is not None:
        last = now if succeeded else _previous_success(job, targets.textfile)
        try:
            write_to_textfile(str(targets.textfile), _registry(job, summary, succeeded, last))
        except OSError as exc:
            log.error("metrics_write_failed", path=str(targets.textfile), error=str(exc))
    if targets.pushgateway is not None:
        # pushadd replaces only the metrics sent: a failed run leaves last_success alone.
        registry = _registry(job, summary, succeeded, now if succeeded else None)
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
