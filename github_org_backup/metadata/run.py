"""The metadata part of a `repos --metadata` run:

    mirrored repositories -> RepositoryBackup each (one at a time, on the API's worker thread)
                          -> OrganisationBackup once -> one commit in the store -> report

Requests go one at a time through ``github.client`` (paced, bounded, retried, rate limits
waited out), conditional on what the last run saw (``github.metadata``). The state that makes
a run incremental is saved only after the run's commit, so a crash costs a fuller next run,
never a change missed.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from github_org_backup.errors import BackupError, DiscoveryStopped
from github_org_backup.github.client import GitHubClient
from github_org_backup.github.http import GitHubSettings
from github_org_backup.github.metadata import MetadataReader
from github_org_backup.github.retry import DEFAULT_MAX_RATE_LIMIT_WAIT_S
from github_org_backup.metadata.assets import Downloader
from github_org_backup.metadata.kinds import Kind, Selection
from github_org_backup.metadata.organisation import OrganisationBackup
from github_org_backup.metadata.parts import PartRunner
from github_org_backup.metadata.repository import RepositoryBackup
from github_org_backup.metadata.store import MetadataStore
from github_org_backup.model.packages import Owner
from github_org_backup.output.metadata_report import MetadataReport, MetadataTally

if TYPE_CHECKING:
    from github import Auth

    from github_org_backup.github.repos import Repo

log = structlog.get_logger("github_org_backup.metadata")

# GitHub allows 900 points a minute of GET requests per endpoint; paced a little under it.
REQUEST_INTERVAL_S = 60 / 850
STATE_VERSION = 1
_WRITER_WAIT_S = 90.0  # a request's longest life: its timeout, and a page read's deadline


@dataclass(frozen=True)
class MetadataJob:
    """What to back up, where, and how to reach GitHub."""

    selection: Selection
    dest: Path
    owner: Owner
    api_url: str
    token: str = field(repr=False)
    github: GitHubSettings = field(default_factory=GitHubSettings)
    auth: Auth.Auth | None = field(default=None, repr=False)  # a GitHub App's installation
    secrets: Callable[[], tuple[str, ...]] | None = field(default=None, repr=False)
    request_interval_s: float = REQUEST_INTERVAL_S


class MetadataBackup:
    """Backs up the metadata of the repositories it is given, and the organisation's."""

    def __init__(self, job: MetadataJob, tally: MetadataTally | None = None) -> None:
        self.job = job
        self.tally = tally or MetadataTally()
        self.store = MetadataStore(job.dest / job.owner.name)
        self._client = GitHubClient(
            job.owner,
            job.token,
            job.api_url,
            retries=job.github.retries,
            max_rate_limit_wait_s=DEFAULT_MAX_RATE_LIMIT_WAIT_S,
            request_interval_s=job.request_interval_s,
            timeout_s=30,
            limits=job.github.limits,
            auth=job.auth,
            secrets=job.secrets,
        )
        self._downloader = Downloader(job.api_url)
        self.runner = PartRunner(MetadataReader(self._client), self.store, self.tally)
        self.stopping = False
        # Held by the worker thread while it writes documents: a stop abandons the call, and
        # the commit must wait until the thread reaches its next request and ends there.
        self._writing = threading.Lock()

    def stop(self) -> None:
        self.stopping = True
        self._client.stop()
        self._downloader.stop()

    def close(self) -> None:
        self._downloader.stop()  # after a cancel, the worker thread may still be downloading
        self._client.close()
        self._downloader.close()

    async def run(self, repositories: list[Repo]) -> MetadataReport:
        """Back up ``repositories`` (the owner's, as listed) and, for an organisation, its
        configuration; commit; the report."""
        job = self.job
        try:
            await asyncio.to_thread(self.store.open)
        except (BackupError, OSError) as exc:
            self.runner.failed(job.owner.name, "store", f"cannot open {self.store.root}: {exc}")
            counts = self.tally.freeze(0, 0, None, str(self.store.root))
            return MetadataReport(counts, tuple(self.runner.outcomes))
        state = await asyncio.to_thread(self.store.load_state)
        if state.get("version") != STATE_VERSION:
            state = {"version": STATE_VERSION}
        repos_state = _section(state, "repos")
        held = _section(state, "assets")
        kinds = job.selection.repository_kinds
        self.tally.repositories_total = len(repositories)
        try:
            for repo in repositories:
                if kinds:
                    backup = RepositoryBackup(self.runner, self._downloader, repo)
                    state_of = _section(repos_state, repo.name)
                    part = functools.partial(backup.run, kinds, state_of, held)
                    await self._client.call(self._locked, part)
                self.tally.repositories_done += 1
            if Kind.ORG in job.selection and job.owner.kind == "orgs":
                org = OrganisationBackup(self.runner, job.owner.name)
                await self._client.call(
                    self._locked, functools.partial(org.run, _section(state, "org"))
                )
        except DiscoveryStopped:
            log.warning("metadata_stopped", repositories_done=self.tally.repositories_done)
        failed_before = self.tally.failed
        commit = await asyncio.to_thread(self._commit)
        committed = self.tally.failed == failed_before  # a commit that failed counts one
        if not self.stopping and committed:  # else the next run reads again what changed
            try:
                await asyncio.to_thread(self.store.save_state, state)
            except OSError as exc:
                reason = f"state not saved ({exc}): the next run reads again what this one read"
                self.runner.failed(job.owner.name, "state", reason)
        counts = self.tally.freeze(
            self._client.pages_requested,
            self._client.pages_not_modified,
            commit,
            str(self.store.root),
        )
        log.info("metadata_finished", **counts.to_json())
        return MetadataReport(counts, tuple(self.runner.outcomes))

    def _locked(self, work: Callable[[], None]) -> None:
        with self._writing:
            work()

    def _commit(self) -> str | None:
        if not self._writing.acquire(timeout=_WRITER_WAIT_S):
            log.error("metadata_not_committed", reason="a request outlived the stop")
            return None
        try:
            return self._commit_now()
        finally:
            self._writing.release()

    def _commit_now(self) -> str | None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        done = self.tally
        message = (
            f"github-org-backup {stamp}\n\n"
            f"{done.repositories_done} of {done.repositories_total} repositories, "
            f"{sum(done.documents.values())} documents written, {done.failed} parts failed"
        )
        try:
            return self.store.commit(message)
        except (BackupError, OSError) as exc:
            self.runner.failed(self.job.owner.name, "store", f"not committed: {exc}")
            return None


def _section(state: dict[str, Any], key: str) -> dict[str, Any]:
    value = state.get(key)
    if not isinstance(value, dict):
        value = state[key] = {}
    return value
