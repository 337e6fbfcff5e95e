"""What users script against in the repos command, pinned from real runs: its JSON report
(keys, their order, every value that does not depend on time, ports or paths), the run_finished
event that repeats its summary, the job summary, the metrics textfile, the names of its log
events and the fields of its progress events, as tests/golden/repos_reports.json holds them.

Volatile values are replaced before comparing: durations by their type, commit ids by their
order of appearance, the backup-ref stamp, the temporary directory and the servers' URLs by
fixed names.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from github_org_backup.output.summary import markdown_text
from tests.harness.clirun import run_cli
from tests.harness.github_repos import GitHubReposStandIn, StandInRepo
from tests.harness.gitserver import GitServer

pytestmark = pytest.mark.integration

ORG = "acme"
GOLDEN = Path(__file__).parent / "golden" / "repos_reports.json"
_SHA = re.compile(r"\b[0-9a-f]{40}\b")
_STAMP = re.compile(r"[0-9]{8}T[0-9]{6}Z")
_SECONDS = re.compile(r"\b[0-9]+\\?\.[0-9] s\b")  # as Markdown escapes it, too
_VOLATILE_METRICS = ("_duration_seconds", "_last_success_timestamp_seconds")
_LOG_FIELDS = {"event", "level", "timestamp", "logger"}


@dataclass
class Names:
    """Fixed names for what changes from one test run to the next."""

    replacements: dict[str, str]
    shas: dict[str, str] = field(default_factory=dict)

    def text(self, text: str) -> str:
        for old, new in self.replacements.items():
            text = text.replace(old, new)
        text = _STAMP.sub("<stamp>", text)
        return _SHA.sub(lambda m: self.shas.setdefault(m.group(0), f"<sha{len(self.shas)}>"), text)

    def value(self, value: Any, key: str = "") -> Any:
        if key == "duration_s":
            return f"<{type(value).__name__}>"
        if isinstance(value, dict):
            return {self.text(k): self.value(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, key) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value


@dataclass
class Night:
    server: GitServer
    github: GitHubReposStandIn
    token: str
    tmp: Path
    names: Names

    def run(self, name: str, *extra: str, code: int, env: dict[str, str] | None = None) -> Any:
        """One run's report, events and summaries, with the volatile values replaced."""
        report = self.tmp / f"{name}.json"
        summary = self.tmp / f"{name}.md"
        metrics = self.tmp / f"{name}.prom"
        args = ["repos", "--org", ORG, "--dest", str(self.tmp / "mirrors")]
        args += ["--report", str(report), "--metrics-file", str(metrics), "--log-format", "json"]
        variables = {"GITHUB_TOKEN": self.token, "GITHUB_API_URL": self.github.url}
        variables |= {"GITHUB_STEP_SUMMARY": str(summary)} | (env or {})
        result = run_cli([*args, *extra], self.tmp, env=variables, timeout=240)
        assert result.returncode == code, result.stderr[-3000:]
        return self._outputs(result, report, summary, metrics)

    def _outputs(
        self, result: subprocess.CompletedProcess[str], report: Path, summary: Path, metrics: Path
    ) -> dict[str, Any]:
        events = [json.loads(line) for line in result.stderr.splitlines()]
        (finished,) = [e for e in events if e["event"] == "run_finished"]
        document = json.loads(report.read_text())
        assert {k: v for k, v in finished.items() if k not in _LOG_FIELDS} == document["summary"]
        progress = {tuple(sorted(e)) for e in events if e["event"] == "progress"}
        return {
            "report": self.names.value(document),
            "events": sorted({e["event"] for e in events}),
            "progress_fields": [list(fields) for fields in sorted(progress)],
            "job_summary": _SECONDS.sub("<n> s", self.names.text(summary.read_text())),
            "metrics": self._metrics(metrics.read_text()),
        }

    @staticmethod
    def _metrics(text: str) -> list[str]:
        lines = []
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            name, value = line.rsplit(" ", 1)
            volatile = name.endswith(_VOLATILE_METRICS)
            lines.append(f"{name} {'<float>' if volatile else value}")
        return sorted(lines)


@pytest.fixture
def night(tmp_path: Path) -> Iterator[Night]:
    token = "ghp_" + secrets.token_hex(18)
    server = GitServer(tmp_path / "server", tokens={token}).start()
    github = GitHubReposStandIn(server.url, tokens={token: "backup-bot"}).start()
    names = Names({server.url: "GITSERVER", github.url: "GITHUB", str(tmp_path): "TMP"})
    names.replacements |= {markdown_text(k): v for k, v in names.replacements.items()}
    yield Night(server, github, token, tmp_path, names)
    github.stop()
    server.stop()


def _outputs(night: Night) -> dict[str, Any]:
    """A first night (a copied, a failed, a refused and a wiki-less repository, a wiki), a
    second after the source rewrote history, a third with nothing changed, and a night
    whose listing fails."""
    s, listed = night.server, night.github.owners.setdefault(ORG, [])
    for name in ("app", "lib"):
        listed.append(StandInRepo(name))
        s.create(ORG, name)
    s.create(ORG, "app.wiki", {"Home.md": "# Home\n"})
    listed += [StandInRepo("vanished", has_wiki=False), StandInRepo("..", has_wiki=False)]
    s.commit(ORG, "app", "dev", {"d.txt": "1"}, "dev work")
    s.commit(ORG, "app", "old", {"o.txt": "1"}, "old work")
    s.set_ref(ORG, "app", "refs/tags/v1", s.refs(ORG, "app")["refs/heads/main"])
    found = {}
    found["first"] = night.run("first", "--wikis", code=1)

    s.commit(ORG, "app", "main", {"m.txt": "2"}, "more on main")
    forced = s.commit(ORG, "app", "dev", {"d.txt": "rewritten"}, "rewritten", parent=None)
    s.set_ref(ORG, "app", "refs/heads/old", None)
    s.set_ref(ORG, "app", "refs/tags/v1", forced)
    s.delay_s = 0.3  # long enough for progress events every 0.1 s
    found["rewritten"] = night.run("rewritten", "--wikis", "--progress-interval", "0.1", code=1)
    s.delay_s = 0.0

    listed[:] = [r for r in listed if r.name in ("app", "lib")]
    found["unchanged"] = night.run("unchanged", code=0)

    night.github.endless = True
    found["listing_failed"] = night.run("listing_failed", code=2, env={"GITHUB_API_MAX_PAGES": "2"})
    return found


def test_repos_report_events_and_summaries_keep_their_shape(night: Night) -> None:
    """Byte for byte as pinned: a renamed key, a reordered key or a changed value fails here."""
    text = json.dumps(_outputs(night), indent=1) + "\n"
    if os.environ.get("PIN_REPOS_REPORTS") == "write":  # only to pin a deliberate change
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()
