"""What users script against, pinned from real runs: the JSON reports of registry, copy and
restore (keys, their order, and every value that does not depend on time or ports) and the
stdout of --dry-run, byte for byte, as tests/golden/run_reports.json holds them.

Volatile values are replaced before comparing: durations, byte and blob counts and request
counts by their type, snapshot ids by their order of appearance, digests by the tag they were
first pushed as, hosts and the org's name by fixed names.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LiveRegistry, docker_config_for
from tests.harness.github_api import GitHubStandIn
from tests.test_history import SmallOrg, _env, _run

pytestmark = pytest.mark.integration

GOLDEN = Path(__file__).parent / "golden" / "run_reports.json"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_ID = re.compile(r"[0-9]{8}T[0-9]{6}\.[0-9]{3}Z")
_BY_TYPE = {
    "duration_s",
    "bytes_copied",
    "bytes_transferred",
    "blobs_copied",
    "blobs_skipped",
    "blobs_mounted",
    "github_rate_limit_remaining",
    "size",
}


@pytest.fixture
def org(source: LiveRegistry, namespace: str, pat: str) -> Iterator[tuple[SmallOrg, GitHubStandIn]]:
    small = SmallOrg(source, f"org{namespace}")
    stand_in = GitHubStandIn(owners={small.name: small.api()}, tokens={pat: {"read:packages"}})
    stand_in.start()
    yield small, stand_in
    stand_in.stop()


class Names:
    """Fixed names for what changes from one test run to the next."""

    def __init__(self, replacements: dict[str, str]) -> None:
        self.replacements = replacements
        self.digests: dict[str, str] = {}
        self.ids: dict[str, str] = {}

    def note(self, org: SmallOrg, when: str) -> None:
        for package, tags in org.tags.items():
            for tag, manifest in tags.items():
                self.digests.setdefault(manifest.digest, f"<{package}:{tag}@{when}>")

    def text(self, text: str) -> str:
        for old, new in self.replacements.items():
            text = text.replace(old, new)
        text = _DIGEST.sub(lambda m: self.digests.get(m.group(0), "<digest>"), text)
        return _ID.sub(lambda m: self.ids.setdefault(m.group(0), f"<id{len(self.ids)}>"), text)

    def value(self, value: Any, key: str = "") -> Any:
        if key in _BY_TYPE and value is not None:
            return f"<{type(value).__name__}>"
        if key == "requests" and isinstance(value, dict):
            return dict(sorted((self.text(k), f"<{type(v).__name__}>") for k, v in value.items()))
        if isinstance(value, dict):
            return {self.text(k): self.value(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, key) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value

    def report(self, path: Path) -> Any:
        return self.value(json.loads(path.read_text()))


def _outputs(
    small: SmallOrg,
    stand_in: GitHubStandIn,
    source: LiveRegistry,
    destination: LiveRegistry,
    namespace: str,
    pat: str,
    tmp_path: Path,
) -> dict[str, Any]:
    """Every report and dry-run stdout of a night, a change at the source, and the next."""
    config = docker_config_for(tmp_path / "docker", destination)
    env = _env(pat, stand_in, source, destination)
    prefix = f"http://{destination.host}/{namespace}"
    names = Names(
        {
            prefix: "DEST",
            f"{source.host}/{small.name}": f"SRC/{small.name}",
            small.name: "ORG",
            source.host: "SRCHOST",
            destination.host: "DESTHOST",
        }
    )
    names.note(small, "first")
    args = ["registry", "--org", small.name, "--dest", prefix, "--all-patches"]
    found: dict[str, Any] = {}

    def run(name: str, *extra: str, code: int = 0) -> None:
        report = tmp_path / f"{name}.json"
        result = _run(env, config, *args, *extra, "--report", str(report))
        assert result.returncode == code, result.stderr[-3000:]
        found[name] = names.report(report)

    def dry(name: str, *extra: str, code: int = 0) -> None:
        result = _run(env, config, *args, *extra, "--dry-run")
        assert result.returncode == code, result.stderr[-3000:]
        found[name] = names.text(result.stdout)

    dry("dry_run_first")
    run("registry_first")
    dry("dry_run_prune_without_retention", "--prune")
    # The source overwrites app:1.1.0 and deletes web:2.0.0.
    small.push("app", "1.1.0")
    del small.tags["web"]["2.0.0"]
    stand_in.owners[small.name] = small.api()
    names.note(small, "second")
    run("registry_plain_prune", "--prune")
    dry("dry_run_prune", "--keep-last", "1", "--prune")
    dry("dry_run_prune_narrow", "--keep-last", "1", "--prune", "--exclude-package", "web")
    run("registry_prune", "--keep-last", "1", "--prune")
    run("registry_unchanged")

    copied = f"http://{destination.host}/{namespace}-copy"
    names.replacements = {copied: "COPY", **names.replacements}
    specs = tmp_path / "specs.json"
    src = f"http://{source.host}/{small.name}"
    specs.write_text(
        "\n".join(
            json.dumps({"src": s, "dst": d})
            for s, d in (
                (f"{src}/app:latest", f"{copied}/{small.name}/app:latest"),
                (f"{src}/web:2.1.0", f"{copied}/{small.name}/web:2.1.0"),
                (f"{src}/web:missing", f"{copied}/{small.name}/web:missing"),
                (f"{src}/app:1.0.0", f"{copied}/{small.name}/app:github-org-backup.history"),
            )
        )
    )
    report = tmp_path / "copy.json"
    result = _run(
        env,
        docker_config_for(tmp_path / "docker-copy", destination, source),
        "copy",
        "--specs",
        str(specs),
        "--snapshot-prefix",
        copied,
        "--report",
        str(report),
    )
    assert result.returncode == 1, result.stderr[-3000:]
    found["copy"] = names.report(report)

    restored = f"http://{destination.host}/{namespace}-restored"
    names.replacements = {restored: "RESTORED", **names.replacements}
    report = tmp_path / "restore.json"
    result = _run(
        env, config, "restore", "--from", prefix, "--to", restored, "--report", str(report)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found["restore"] = names.report(report)
    return found


def test_reports_and_dry_run_lines_keep_their_shape(
    org: tuple[SmallOrg, GitHubStandIn],
    source: LiveRegistry,
    destination: LiveRegistry,
    namespace: str,
    pat: str,
    tmp_path: Path,
) -> None:
    """Byte for byte as pinned: a renamed key, a reordered key or a changed line fails here."""
    small, stand_in = org
    found = _outputs(small, stand_in, source, destination, namespace, pat, tmp_path)
    text = json.dumps(found, indent=1) + "\n"
    if os.environ.get("PIN_RUN_REPORTS") == "write":  # only to pin a deliberate change
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()
