"""`restore-metadata`: one repository's releases and issues, from the metadata store into
another repository on GitHub, or its issues into a file to review first.

    the store at HEAD or --as-of -> repos/REPO (metadata.restore)
        --export-issues FILE      -> the replay form, JSON lines (metadata.replay)
        --to OWNER/REPO --releases -> each release created, its assets checked then uploaded
        --to OWNER/REPO --issues   -> each issue created, its comments added, closed if it was

One item's failure is its own (exit 1): an asset file missing or changed fails its release
before anything of it is created; a release whose tag already has one in --to is skipped. What
every later request would meet as well (the token refused, --to missing, issues disabled there,
GitHub unreachable) stops the run (exit 2); the report says what was created up to there.
"""

from __future__ import annotations

import io
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from github_org_backup.base.exits import EXIT_EMPTY, EXIT_FAILED, EXIT_OK, EXIT_USAGE
from github_org_backup.base.files import atomic_write
from github_org_backup.errors import (
    BackupError,
    GitHubRefused,
    GitHubUnavailable,
    OutputError,
)
from github_org_backup.metadata.publish import GitHubWriter
from github_org_backup.metadata.replay import read_export, replay_records, write_export
from github_org_backup.metadata.restore import (
    ReleasePlan,
    RepoTree,
    Revision,
    asset_problem,
    extract,
    open_store,
    release_plans,
    revision,
)
from github_org_backup.output.report import write_report
from github_org_backup.settings.restore_metadata import TOKEN_FOR_RESTORE, RestoreMetadataOptions

log = structlog.get_logger("github_org_backup.commands.restore_metadata")

_STOPPING = (401, 403, 404, 410)  # every later request would meet the same refusal


class _Stop(Exception):
    """What ends the run: every later request would fail alike."""


@dataclass
class Restored:
    """What the run did, item by item: the report."""

    target: str | None
    releases: list[dict[str, Any]] = field(default_factory=list)
    issues: list[dict[str, Any]] = field(default_factory=list)
    exported: int = 0
    assets_uploaded: int = 0
    asset_bytes_uploaded: int = 0
    comments_created: int = 0
    stopped: str | None = None

    def count(self, items: list[dict[str, Any]], status: str) -> int:
        return sum(1 for item in items if item.get("status") == status)

    @property
    def failed(self) -> bool:
        return any(i.get("status") == "failed" for i in (*self.releases, *self.issues))

    def summary(self, options: RestoreMetadataOptions, rev: Revision) -> dict[str, Any]:
        return {
            "store": str(options.store),
            "repository": options.repo,
            "commit": rev.commit,
            "committed_at": rev.committed_at,
            "target": self.target,
            "releases_created": self.count(self.releases, "created"),
            "releases_skipped": self.count(self.releases, "skipped"),
            "releases_failed": self.count(self.releases, "failed"),
            "assets_uploaded": self.assets_uploaded,
            "asset_bytes_uploaded": self.asset_bytes_uploaded,
            "issues_exported": self.exported,
            "issues_created": self.count(self.issues, "created"),
            "issues_failed": self.count(self.issues, "failed"),
            "comments_created": self.comments_created,
            "stopped": self.stopped,
        }


async def run_restore_metadata(options: RestoreMetadataOptions) -> int:
    store = open_store(options.store)
    rev = revision(store, options.as_of)
    source = f"{store.root.parent.name}/{options.repo}"
    restored = Restored(options.target)
    with tempfile.TemporaryDirectory(prefix="github-org-backup-restore-") as tmp:
        tree = RepoTree(extract(store, rev.commit, options.repo, Path(tmp)), source)
        log.info(
            "restore_metadata_started",
            store=str(store.root),
            repository=source,
            commit=rev.commit,
            committed_at=rev.committed_at,
            target=options.target,
        )
        wants_store_issues = options.export_issues is not None or (
            options.issues and options.issues_from is None
        )
        records = list(replay_records(tree)) if wants_store_issues else []
        replay = read_export(options.issues_from) if options.issues_from else records
        plans = release_plans(tree, store.assets) if options.releases else []
        for path in tree.unreadable:
            log.warning("document_unreadable", repository=source, document=path)
        if options.export_issues is not None:
            restored.exported = _export(records, options.export_issues)
        found = len(plans) + (len(replay) if options.issues else 0) + restored.exported
        if found == 0:
            reason = f"the store holds nothing of what was asked for {source} at {rev.commit[:12]}"
            log.warning("nothing_selected", reason=reason, allow_empty=options.allow_empty)
        elif options.target is not None:
            _send(options, plans, replay, restored, source)
    summary = restored.summary(options, rev)
    log.info("restore_metadata_finished", **summary)
    if options.output.report is not None:
        report = {"summary": summary, "releases": restored.releases, "issues": restored.issues}
        write_report(options.output.report, report)
    if restored.stopped:
        return EXIT_USAGE
    if restored.failed:
        return EXIT_FAILED
    if found == 0 and not options.allow_empty:
        return EXIT_EMPTY
    return EXIT_OK


def _export(records: list[dict[str, Any]], path: Path) -> int:
    if str(path) == "-":
        count = write_export(records, sys.stdout)
        sys.stdout.flush()
    else:
        lines = io.StringIO()
        count = write_export(records, lines)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lines.getvalue().encode())
        except OSError as exc:
            raise OutputError(f"--export-issues {path}: cannot write it: {exc.strerror}") from None
    log.info("issues_exported", issues=count, file=str(path))
    return count


def _send(
    options: RestoreMetadataOptions,
    plans: list[ReleasePlan],
    replay: list[dict[str, Any]],
    restored: Restored,
    source: str,
) -> None:
    target = options.target
    assert target is not None
    if target.lower() == source.lower():
        log.warning(
            "restore_into_source",
            target=target,
            hint="restoring into the repository the backup was made from: each issue is "
            "created again beside the one that is there",
        )
    writer = GitHubWriter(options.api_url, options.token, write_interval_s=options.write_interval_s)
    try:
        answer = writer.get(f"/repos/{target}")
        if answer.status != 200:
            _stop_for(GitHubRefused(answer.status, f"GET /repos/{target}", ""), target)
        if options.releases:
            _releases(writer, target, plans, restored)
        if options.issues:
            _issues(writer, target, replay, restored)
    except _Stop as exc:
        restored.stopped = str(exc)
    except BackupError as exc:  # an answer outside GitHub's shape or bounds
        restored.stopped = _text(exc)
    finally:
        if restored.stopped:
            log.error("restore_stopped", error=restored.stopped)
        writer.close()


def _stop_for(exc: BackupError, target: str) -> None:
    """Raise _Stop when ``exc`` is what every later request would meet as well."""
    if isinstance(exc, GitHubUnavailable):
        raise _Stop(str(exc))
    if not isinstance(exc, GitHubRefused) or exc.status not in _STOPPING:
        return
    why = {
        401: "GitHub refused the token: check GITHUB_TOKEN / --github-token-file",
        403: f"GitHub does not let this token write to {target}: it needs {TOKEN_FOR_RESTORE}",
        404: f"{target} does not exist or this token cannot see it: create the repository "
        "first (and push the git mirror to it), and check the token's access",
        410: f"issues are disabled in {target}: enable them in its settings, then run again",
    }[exc.status]
    raise _Stop(f"{why} ({_text(exc)})")


def _text(exc: BackupError) -> str:
    if isinstance(exc, GitHubRefused) and exc.message:
        return f"{exc.reason}: {exc.message}"
    return str(exc)


def _releases(
    writer: GitHubWriter, target: str, plans: list[ReleasePlan], restored: Restored
) -> None:
    try:
        existing = {r.get("tag_name") for r in writer.pages(f"/repos/{target}/releases")}
    except BackupError as exc:
        _stop_for(exc, target)
        raise _Stop(f"cannot list the releases of {target}: {_text(exc)}") from None
    for plan in plans:
        entry: dict[str, Any] = {"tag": plan.tag, "release_id": plan.id, "assets": len(plan.assets)}
        restored.releases.append(entry)
        if plan.tag in existing:
            _skipped(entry, f"tag {plan.tag} already has a release in {target}")
            continue
        problems = [p for p in map(asset_problem, plan.assets) if p]
        if problems:
            _failed(entry, "; ".join(problems) + f": nothing of release {plan.tag} was created")
            continue
        try:
            created = writer.write("POST", f"/repos/{target}/releases", plan.fields)
        except BackupError as exc:
            if isinstance(exc, GitHubRefused) and "already_exists" in exc.message:
                _skipped(entry, f"tag {plan.tag} already has a release in {target}")
            else:
                _failed(entry, f"release {plan.tag} was not created: {_text(exc)}")
                _stop_for(exc, target)
            continue
        entry["id"] = created.get("id") if isinstance(created, dict) else None
        _upload(writer, target, plan, created, entry, restored)


def _upload(
    writer: GitHubWriter,
    target: str,
    plan: ReleasePlan,
    created: Any,
    entry: dict[str, Any],
    restored: Restored,
) -> None:
    upload_url = created.get("upload_url") if isinstance(created, dict) else None
    done = 0
    try:
        for asset in plan.assets:
            if not isinstance(upload_url, str):
                raise BackupError("GitHub's answer named no upload_url for the release")
            answer = writer.upload(upload_url, asset)
            size = answer.get("size") if isinstance(answer, dict) else None
            if size != asset.size:
                raise BackupError(
                    f"GitHub holds {size} bytes of asset {asset.name!r}, not {asset.size}"
                )
            done += 1
            restored.assets_uploaded += 1
            restored.asset_bytes_uploaded += asset.size
            log.info("asset_uploaded", tag=plan.tag, asset=asset.name, size=asset.size)
    except BackupError as exc:
        note = (
            f"release {plan.tag} was created in {target} with {done} of {len(plan.assets)} "
            f"assets: {_text(exc)}; delete it there and run again"
        )
        _failed(entry, note)
        _stop_for(exc, target)
        return
    entry["status"] = "created"
    log.info("release_restored", tag=plan.tag, assets=done, target=target)


def _skipped(entry: dict[str, Any], reason: str) -> None:
    entry |= {"status": "skipped", "reason": reason}
    log.warning("release_skipped", tag=entry["tag"], reason=reason)


def _failed(entry: dict[str, Any], error: str) -> None:
    entry |= {"status": "failed", "error": error}
    log.error("release_failed", tag=entry["tag"], error=error)


def _issues(
    writer: GitHubWriter, target: str, records: list[dict[str, Any]], restored: Restored
) -> None:
    for index, record in enumerate(records, 1):
        original = record.get("original")
        number = original.get("number") if isinstance(original, dict) else None
        entry: dict[str, Any] = {"original": number, "title": record["title"], "comments": 0}
        restored.issues.append(entry)
        try:
            _issue(writer, target, record, entry, restored)
        except BackupError as exc:
            entry |= {"status": "failed", "error": _text(exc)}
            log.error(
                "issue_failed", original=number, created=entry.get("number"), error=_text(exc)
            )
            _stop_for(exc, target)
            continue
        entry["status"] = "created"
        log.info(
            "issue_replayed",
            original=number,
            number=entry["number"],
            comments=entry["comments"],
            done=index,
            total=len(records),
        )


def _issue(
    writer: GitHubWriter,
    target: str,
    record: dict[str, Any],
    entry: dict[str, Any],
    restored: Restored,
) -> None:
    fields = {
        "title": record["title"],
        "body": record.get("body", ""),
        "labels": record.get("labels", []),
    }
    created = writer.write("POST", f"/repos/{target}/issues", fields)
    number = created.get("number") if isinstance(created, dict) else None
    if not isinstance(number, int):
        raise BackupError("GitHub's answer to a new issue named no number")
    entry["number"] = number
    for comment in record.get("comments", []):
        writer.write("POST", f"/repos/{target}/issues/{number}/comments", {"body": comment["body"]})
        entry["comments"] += 1
        restored.comments_created += 1
    if record.get("state") == "closed":
        closing: dict[str, Any] = {"state": "closed"}
        if record.get("state_reason") in ("completed", "not_planned"):
            closing["state_reason"] = record["state_reason"]
        writer.write("PATCH", f"/repos/{target}/issues/{number}", closing)
