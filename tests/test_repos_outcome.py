"""The repos command's typed report as its readers see it: the job summary and the terminal
table, the metrics, the report file and the exit code of the shared run lifecycle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from github_org_backup.commands.repos import _finish
from github_org_backup.commands.run import Lifecycle
from github_org_backup.output.metrics import REPOS, MetricsTargets, _registry
from github_org_backup.output.repos_report import (
    Listing,
    RefUpdate,
    RepoCounts,
    RepoOutcome,
    ReposReport,
)
from github_org_backup.output.summary import Outcome, markdown, outcome
from github_org_backup.settings.options import Output, RunControl
from tests.test_hostile_operator import HOSTILE, _assert_literal_markdown

KEPT = "refs/backup/20261129T171538Z/"


def _report(**changes: object) -> ReposReport:
    app = RepoOutcome(
        "acme/app",
        "/backup/acme/app.git",
        "repository",
        "copied",
        refs_updated=3,
        ref_changes=(
            RefUpdate("refs/heads/dev", "a" * 40, "b" * 40, "forced", f"{KEPT}heads/dev"),
            RefUpdate("refs/heads/main", "c" * 40, "d" * 40, "fast-forward"),
            RefUpdate("refs/heads/old", "e" * 40, None, "deleted", f"{KEPT}heads/old"),
        ),
        lfs_objects=2,
        duration_s=1.5,
    )
    gone = RepoOutcome("acme/gone", "/backup/acme/gone.git", "repository", "failed", "not found")
    wiki = RepoOutcome("acme/app.wiki", "/backup/acme/app.wiki.git", "wiki", "absent")
    fields: dict[str, object] = {
        "counts": RepoCounts(3, 1, 0, 1, 1, 3, 2, 12.34),
        "dest": "/backup",
        "owner": "acme",
        "repositories": (app, gone, wiki),
        "listing": Listing(5, 2, 4999, KEPT),
    }
    return ReposReport(**(fields | changes))  # type: ignore[arg-type]


def test_the_summaries_show_counts_failures_and_rewritten_refs() -> None:
    """Counts in a fixed order, every failed repository with its reason, and every ref the
    source force-pushed or deleted (a fast-forward is no rewrite)."""
    assert outcome(_report()) == Outcome(
        counts=(
            ("repositories copied", "1"),
            ("repositories unchanged", "0"),
            ("repositories failed", "1"),
            ("refs updated", "3"),
            ("duration", "12.3 s"),
        ),
        failures=(("acme/gone", "not found"),),
        moved=(
            ("acme/app refs/heads/dev", "a" * 40, "b" * 40),
            ("acme/app refs/heads/old", "e" * 40, "deleted"),
        ),
    )
    failed = _report(repositories=(), listing=None, discovery_error="HTTP 502")
    assert outcome(failed).failures == (("discovery", "HTTP 502"),)


def test_hostile_repository_names_and_errors_render_literally() -> None:
    """Names, refs and error texts from GitHub or the git server form no Markdown construct."""
    hostile = tuple(
        RepoOutcome(
            text,
            "",
            "repository",
            "failed",
            text,
            ref_changes=(RefUpdate(text, text, None, "deleted"),),
        )
        for text in HOSTILE.values()
    )
    report = _report(repositories=hostile, discovery_error=HOSTILE["line"], listing=None)
    _assert_literal_markdown(markdown("repos", report, 1), list(HOSTILE.values()))


def test_metrics_read_the_typed_counts() -> None:
    """The repos job's gauges, under names of their own."""
    registry = _registry(REPOS, _report(), succeeded=False, last_success=None)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for metric in registry.collect()
        for s in metric.samples
    }
    prefix = "github_org_backup_repos"
    assert samples == {
        (f"{prefix}_repositories", (("outcome", "copied"),)): 1.0,
        (f"{prefix}_repositories", (("outcome", "unchanged"),)): 0.0,
        (f"{prefix}_repositories", (("outcome", "failed"),)): 1.0,
        (f"{prefix}_refs_updated", ()): 3.0,
        (f"{prefix}_refs_kept", ()): 2.0,
        (f"{prefix}_duration_seconds", ()): 12.34,
        (f"{prefix}_last_run_success", ()): 0.0,
    }
    assert REPOS.name == "github-org-backup-repos"


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({}, 1),  # a repository failed
        ({"counts": RepoCounts(1, 1), "repositories": ()}, 0),
        ({"interrupted": True}, 143),  # stopped by a signal, whatever failed
        ({"listing": None, "discovery_error": "HTTP 502", "repositories": ()}, 1),
    ],
)
def test_the_lifecycle_writes_the_report_and_gives_the_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, changes: dict[str, object], code: int
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)  # not this test run's job page
    report = _report(**({"counts": RepoCounts(1, 1, 0, 1)} | changes))
    path = tmp_path / "report.json"
    run = RunControl(1, 0.1, 60.0, MetricsTargets(textfile=tmp_path / "repos.prom"))
    assert _finish(Lifecycle(Output("repos", path, False), run), report) == code
    assert json.loads(path.read_text()) == report.to_json()
    success = "github_org_backup_repos_last_run_success 1.0"
    assert (success in (tmp_path / "repos.prom").read_text()) == (code == 0)


def test_the_report_json_holds_the_listing_or_why_it_failed() -> None:
    """A run that listed holds what it listed and whether it was stopped; one whose listing
    failed holds the error instead."""
    summary = _report(interrupted=True).to_json()["summary"]
    assert list(summary)[-7:] == [
        "dest",
        "owner",
        "repositories_listed",
        "repositories_filtered_out",
        "github_rate_limit_remaining",
        "backup_ref_prefix",
        "interrupted",
    ]
    assert summary["interrupted"] is True and summary["backup_ref_prefix"] == KEPT
    failed = _report(listing=None, discovery_error="HTTP 502", repositories=()).to_json()
    assert list(failed["summary"])[-3:] == ["dest", "owner", "discovery_error"]
    assert failed["repositories"] == []
