"""`repos --metadata` against a GitHub stand-in in GitHub's shapes and a real git server: the
first run, a run after edits and deletions (each old state recovered from the store's
history), a run with nothing changed (its counted requests measured), assets checked and never
fetched twice, 410 for disabled issues, one repository's failure its own, and token canaries."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.harness.clirun import COMMAND, ROOT, cli_env, run_cli
from tests.harness.github_meta import GitHubOrgStandIn
from tests.harness.gitserver import GitServer
from tests.harness.repos_world import ReposPlaces

pytestmark = pytest.mark.integration  # git, and the CLI as a subprocess

ORG = "acme"


@dataclass
class World(ReposPlaces):
    server: GitServer
    github: GitHubOrgStandIn
    token: str
    tmp: Path

    def repo(self, name: str, **kw: Any) -> None:
        self.server.create(ORG, name)
        self.github.add_repo_metadata(f"{ORG}/{name}", **kw)

    def run(
        self, *extra: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        environment = {"GITHUB_TOKEN": self.token, "GITHUB_API_URL": self.github.url}
        return run_cli(self.args(*extra), self.tmp, env=environment | (env or {}), timeout=240)

    def doc(self, *parts: str) -> Any:
        return json.loads(self.store.joinpath(*parts).read_text())

    def at(self, rev: str, path: str) -> Any:
        return json.loads(self.git("show", f"{rev}:{path}"))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    token = "ghp_" + secrets.token_hex(18)
    server = GitServer(tmp_path / "server", tokens={token}).start()
    github = GitHubOrgStandIn(server.url, tokens={token: "backup-bot"}).start()
    github.org(ORG, name="Acme Corp")
    yield World(server, github, token, tmp_path)
    github.stop()
    server.stop()


def _small_org(world: World) -> None:
    gh = world.github
    world.repo("app")
    world.repo("lib")
    gh.populate(f"{ORG}/app", issues=120, comments_per_issue=1, pulls=3, releases=2)
    gh.populate(f"{ORG}/lib", issues=5, pulls=1, releases=0)
    labels = gh.repo_meta[f"{ORG}/lib"].labels
    for n in range(100 - len(labels)):  # exactly one full page
        gh.label(f"{ORG}/lib", f"area/{n}")
    gh.milestone(f"{ORG}/app", "v2")
    gh.add_members(ORG, "alice", "bob", "carol")
    gh.team(ORG, "platform", members=("alice", "bob"), repos={f"{ORG}/app": "push"})
    gh.hook(ORG, "https://hooks.example.com/ci", secret="hook-secret-value")
    gh.variable(ORG, "REGION", "eu-west-1")
    gh.secret(ORG, "DEPLOY_KEY")
    gh.ruleset(ORG, "protect-main")


def test_first_run_stores_every_kind_as_github_returned_it(world: World) -> None:
    """Issues past the first page, pulls with reviews, releases with their assets' bytes,
    labels, milestones and the organisation's configuration land as JSON in one commit."""
    _small_org(world)
    result = world.run("--metadata")
    assert result.returncode == 0, result.stderr[-3000:]

    issue = world.doc("repos", "app", "issues", "1.json")
    assert issue["issue"]["title"] == "Issue 1 of acme/app"
    assert [c["body"] for c in issue["comments"]] == ["Comment 1 on #1."]
    assert len(list((world.store / "repos" / "app" / "issues").glob("*.json"))) == 123
    pull_numbers = sorted(int(p.stem) for p in (world.store / "repos/app/pulls").glob("*.json"))
    assert len(pull_numbers) == 3
    pull = world.doc("repos", "app", "pulls", f"{pull_numbers[0]}.json")
    assert pull["pull"]["number"] == pull_numbers[0]
    assert len(pull["reviews"]) == 1 and len(pull["review_comments"]) == 1
    labels = world.doc("repos", "app", "labels.json")
    assert {label["name"] for label in labels} >= {"bug", "enhancement"}
    assert [m["title"] for m in world.doc("repos", "app", "milestones.json")] == ["v2"]

    assets = world.doc("repos", "app", "assets.json")
    assert len(assets) == 2
    for entry in assets:
        kept = world.dest / ORG / "assets" / "sha256" / entry["sha256"]
        assert hashlib.sha256(kept.read_bytes()).hexdigest() == entry["sha256"]
    assert all("Authorization" not in h for _, h in world.github.storage_received)
    assert world.github.storage_received, "the assets came from the storage host"

    team = next((world.store / "org" / "teams").glob("*.json"))
    team_doc = json.loads(team.read_text())
    assert [m["login"] for m in team_doc["members"]] == ["alice", "bob"]
    assert team_doc["repositories"][0]["permissions"]["push"] is True
    assert world.doc("org", "organization.json")["login"] == ORG
    assert [s["name"] for s in world.doc("org", "actions-secrets.json")] == ["DEPLOY_KEY"]
    assert [v["value"] for v in world.doc("org", "actions-variables.json")] == ["eu-west-1"]
    assert "hook-secret-value" not in world.doc("org", "hooks.json").__repr__()

    summary = world.report()["summary"]["metadata"]
    assert summary["commit"] == world.git("rev-parse", "HEAD").strip()
    assert summary["assets_downloaded"] == 2
    assert summary["documents_written"]["issues"] == 123 + 6  # pulls are issues too
    assert world.git("status", "--porcelain") == ""


def test_a_run_with_nothing_changed_costs_no_counted_request(world: World) -> None:
    """Every list asked with its ETag answers 304, which GitHub does not count: the warm run
    spends no counted request on metadata, downloads no asset and makes no commit."""
    _small_org(world)
    assert world.run("--metadata").returncode == 0
    cold = world.report()["summary"]["metadata"]["github_requests_counted"]
    head = world.git("rev-parse", "HEAD")
    world.github.reset_counts()

    result = world.run("--metadata")

    assert result.returncode == 0, result.stderr[-3000:]
    warm = world.report()["summary"]["metadata"]
    assert warm["github_requests_counted"] == 0, [
        (path, status) for path, status in world.github.answered if status != 304
    ]
    assert warm["assets_downloaded"] == 0
    assert warm["commit"] is None
    assert world.git("rev-parse", "HEAD") == head
    assert not world.github.storage_received
    assert cold > 10


def test_edits_and_deletions_keep_every_old_state_in_the_history(world: World) -> None:
    """An edited issue body, a deleted comment, a deleted release, a renamed label and a
    removed team member: the next run follows the source, and the first run's commit still
    holds each earlier state."""
    _small_org(world)
    gh = world.github
    assert world.run("--metadata").returncode == 0
    first = world.git("rev-parse", "HEAD").strip()
    app = f"{ORG}/app"
    comment_id = world.doc("repos", "app", "issues", "2.json")["comments"][0]["id"]
    release_id = world.doc("repos", "app", "assets.json")[0]["release_id"]

    gh.edit_issue(app, 1, body="Rewritten by someone else.")
    gh.delete_comment(app, comment_id)
    gh.delete_release(app, release_id)
    gh.rename_label(app, "bug", "defect")
    gh.remove_team_member("platform", "bob")
    result = world.run("--metadata")

    assert result.returncode == 0, result.stderr[-3000:]
    assert world.doc("repos", "app", "issues", "1.json")["issue"]["body"] == (
        "Rewritten by someone else."
    )
    assert (
        world.at(first, "repos/app/issues/1.json")["issue"]["body"] == "What happened in issue 1."
    )
    assert world.at(first, "repos/app/issues/2.json")["comments"][0]["id"] == comment_id
    assert not (world.store / "repos" / "app" / "releases" / f"{release_id}.json").exists()
    assert world.at(first, f"repos/app/releases/{release_id}.json")["id"] == release_id
    names = {label["name"] for label in world.doc("repos", "app", "labels.json")}
    assert "defect" in names and "bug" not in names
    assert "bug" in {label["name"] for label in world.at(first, "repos/app/labels.json")}
    team = next((world.store / "org" / "teams").glob("*.json")).name
    assert [m["login"] for m in world.doc("org", "teams", team)["members"]] == ["alice"]
    old_team = world.at(first, f"org/teams/{team}")
    assert [m["login"] for m in old_team["members"]] == ["alice", "bob"]
    # The deleted release's asset bytes stay under assets/.
    for entry in world.at(first, "repos/app/assets.json"):
        assert (world.dest / ORG / "assets" / "sha256" / entry["sha256"]).is_file()
    assert len(world.git("log", "--format=%H").split()) == 2


def test_disabled_issues_are_absent_not_failed(world: World) -> None:
    """A repository listed with has_issues false is not asked for its issues; one whose
    listing says nothing gets GitHub's 410 "Issues are disabled for this repo". Both are
    absent, not failed, and the run succeeds. Their pull requests' conversations, which
    GitHub keeps as issue comments, are still backed up."""
    world.repo("quiet")
    world.repo("mute")
    said = {}
    for name in ("quiet", "mute"):
        repo = f"{ORG}/{name}"
        world.github.populate(repo, releases=1)
        pull = world.github.pull(repo, "a change")
        said[name] = (pull.number, world.github.comment(repo, pull.number, f"lgtm {name}").body)
        world.github.add_repo_metadata(repo, issues_enabled=False)
    listing = world.github._json

    def unsaid(owner: str, repo: Any) -> dict[str, object]:
        answer = listing(owner, repo)
        if repo.name == "mute":
            del answer["has_issues"]
        return answer

    world.github._json = unsaid  # type: ignore[method-assign]
    result = world.run("--metadata=issues,releases")

    assert result.returncode == 0, result.stderr[-3000:]
    parts = {(p["scope"], p["kind"]): p["status"] for p in world.report()["metadata"]}
    assert parts[(f"{ORG}/quiet", "issues")] == "absent"
    assert parts[(f"{ORG}/mute", "issues")] == "absent"
    asked = [p.partition("?")[0] for p in world.github.requests]
    assert f"/repos/{ORG}/quiet/issues" not in asked
    assert f"/repos/{ORG}/mute/issues" in asked
    for name, (number, body) in said.items():
        assert parts[(f"{ORG}/{name}", "issues/comments")] == "updated"
        doc = world.doc("repos", name, "issues", f"{number}.json")
        assert doc["issue"] is None
        assert [c["body"] for c in doc["comments"]] == [body]
    assert (world.store / "repos" / "quiet" / "releases").is_dir()
    assert not (world.store / "org").exists()


def test_an_asset_whose_bytes_differ_fails_alone_and_is_not_kept(world: World) -> None:
    """Storage serving other bytes than the asset's digest: that asset fails (exit 1), its
    bytes are not kept, the rest of the run is backed up, and the next run tries it again."""
    world.repo("app")
    world.repo("lib")
    gh = world.github
    release = gh.add_release(f"{ORG}/app", "v1.0.0", assets={"tool.tgz": b"real bytes" * 100})
    gh.populate(f"{ORG}/lib", issues=3)
    asset = release.assets[0]
    gh.tamper_asset(asset.id)

    result = world.run("--metadata")

    assert result.returncode == 1, result.stderr[-3000:]
    parts = [p for p in world.report()["metadata"] if p["status"] == "failed"]
    assert len(parts) == 1 and parts[0]["kind"] == "assets", parts
    assert "digest" in parts[0]["error"]
    held = list((world.dest / ORG / "assets" / "sha256").iterdir())
    assert held == []
    assert len(list((world.store / "repos" / "lib" / "issues").glob("*.json"))) == 3

    gh.tampered.clear()
    world.github.reset_counts()
    unreadable = world.store / "repos" / "app" / "releases" / "999.json"
    unreadable.write_text("[]\n")  # not a release: the retry cannot read it, nor remove it
    assert world.run("--metadata").returncode == 0
    assert unreadable.exists()  # the 304 says the releases are unchanged
    assert [p.name for p in (world.dest / ORG / "assets" / "sha256").iterdir()] == [
        hashlib.sha256(b"real bytes" * 100).hexdigest()
    ]
    releases = [s for p, s in world.github.answered if p.startswith(f"/repos/{ORG}/app/releases?")]
    assert releases == [304]  # the failed asset is retried without reading the list again
    assert world.doc("repos", "app", "assets.json")[0]["id"] == asset.id

    world.github.reset_counts()
    assert world.run("--metadata").returncode == 0
    assert world.report()["summary"]["metadata"]["github_requests_counted"] == 0


def test_the_token_appears_in_no_argv_file_log_or_report(world: World) -> None:
    """While a --metadata run goes, no process's command line holds the token; afterwards the
    run's output, the report, the store (tree and .git), the assets, HOME and TMPDIR do not;
    the storage host never received it."""
    _small_org(world)
    world.github.delay_s = 0.01
    home, tmpdir = world.tmp / "home", world.tmp / "tmpdir"
    home.mkdir()
    tmpdir.mkdir()
    forms = [world.token.encode(), base64.b64encode(world.token.encode())]
    forms.append(base64.b64encode(f"github-org-backup:{world.token}".encode()))
    env = {"GITHUB_TOKEN": world.token, "GITHUB_API_URL": world.github.url}
    env |= {"HOME": str(home), "TMPDIR": str(tmpdir)}
    process = subprocess.Popen(
        [*COMMAND, *world.args("--metadata")],
        env=cli_env(world.tmp, env),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    scans = 0
    while process.poll() is None:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                argv = Path("/proc", pid, "cmdline").read_bytes()
            except OSError:
                continue
            assert not any(form in argv for form in forms), argv
        scans += 1
    out, err = process.communicate()
    assert process.returncode == 0, err[-3000:]
    assert scans > 1, "the scan never ran while the run did"
    assert not any(form in out + err for form in forms)
    for path in [*world.dest.rglob("*"), *home.rglob("*"), *tmpdir.rglob("*"), world.report_path]:
        if path.is_file():
            assert not any(form in path.read_bytes() for form in forms), path
    assert world.github.storage_received
    for _, headers in world.github.storage_received:
        assert world.token not in json.dumps(headers)


def test_shapes_github_really_sends(world: World) -> None:
    """An archived repository, a pull request without reviews and a draft release are backed
    up like any other; a list read whole (labels) is paged through Link."""
    world.repo("old")
    world.github.owners[ORG][-1].archived = True
    gh = world.github
    gh.populate(f"{ORG}/old", issues=150)
    pull = gh.pull(f"{ORG}/old", "No review yet")
    draft = gh.add_release(f"{ORG}/old", "v9.0.0", draft=True, assets={"draft.bin": b"d" * 10})
    for n in range(150):
        gh.label(f"{ORG}/old", f"area/{n}")

    result = world.run("--metadata=issues,pulls,releases,labels")

    assert result.returncode == 0, result.stderr[-3000:]
    assert world.doc("repos", "old", "pulls", f"{pull.number}.json")["reviews"] == []
    assert world.doc("repos", "old", "releases", f"{draft.id}.json")["draft"] is True
    assert len(list((world.store / "repos" / "old" / "issues").glob("*.json"))) == 151
    assert len(world.doc("repos", "old", "labels.json")) == len(gh.repo_meta[f"{ORG}/old"].labels)
    assert any(p.startswith("/repos/acme/old/labels?") and "page=2" in p for p in gh.requests)
    # Issues past the first page are asked by a cursor on time, not by page number.
    assert any("/issues?" in p and "since=" in p and "direction=asc" in p for p in gh.requests)


def test_a_secondary_rate_limit_is_waited_out(world: World) -> None:
    """GitHub's 403 with Retry-After for the secondary limit: the run waits and goes on."""
    world.repo("app")
    world.github.populate(f"{ORG}/app", issues=10)
    world.github.secondary_after = 4
    result = world.run("--metadata=issues,labels")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "github_rate_limit_wait" in result.stdout + result.stderr
    assert len(list((world.store / "repos" / "app" / "issues").glob("*.json"))) == 10


def test_one_repository_failing_is_that_repository_alone(world: World) -> None:
    """A repository whose pull list is not a list fails its pulls, named in the report (exit
    1); its issues and every other repository are backed up and committed."""
    world.repo("app")
    world.repo("broken")
    gh = world.github
    gh.populate(f"{ORG}/app", issues=3, pulls=1)
    gh.populate(f"{ORG}/broken", issues=2, pulls=1)
    route = gh._meta_route

    def hostile(method: str, path: str, *args: Any) -> Any:
        if path == f"/repos/{ORG}/broken/pulls":
            return 200, {"message": "not a list"}, {}
        return route(method, path, *args)

    gh._meta_route = hostile  # type: ignore[method-assign,assignment]
    result = world.run("--metadata=issues,pulls")

    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    failed = [p for p in world.report()["metadata"] if p["status"] == "failed"]
    assert [(p["scope"], p["kind"]) for p in failed] == [(f"{ORG}/broken", "pulls")]
    assert len(list((world.store / "repos" / "broken" / "issues").glob("*.json"))) == 3
    assert (world.store / "repos" / "app" / "pulls").is_dir()
    assert world.git("status", "--porcelain") == ""


def _list_rewritten(gh: GitHubOrgStandIn, list_path: str, change: Callable[[Any], Any]) -> Any:
    """Make the stand-in pass each item of the list at ``list_path`` through ``change``;
    the route it had, to put back."""
    route = gh._meta_route

    def rewritten(method: str, path: str, *args: Any) -> Any:
        found: Any = route(method, path, *args)
        if found is None or path != list_path or not isinstance(found[1], list):
            return found
        status, data, headers = found
        return status, [change(item) for item in data], headers

    gh._meta_route = rewritten  # type: ignore[method-assign,assignment]
    return route


def test_an_item_without_a_number_fails_its_part_and_is_read_again(world: World) -> None:
    """An issue listed without its number cannot be stored: the part fails naming it (exit 1),
    the other issues are stored, and the high-water mark stays where it was, so the next run
    reads the issue again and stores it."""
    world.repo("app")
    gh = world.github
    gh.populate(f"{ORG}/app", issues=5)
    odd = sorted(gh.repo_meta[f"{ORG}/app"].issues)[2]
    route = _list_rewritten(
        gh, f"/repos/{ORG}/app/issues", lambda i: i | {"number": None} if i["number"] == odd else i
    )
    first = world.run("--metadata=issues")
    assert first.returncode == 1, first.stderr[-3000:]
    assert "Traceback" not in first.stderr
    failed = [p for p in world.report()["metadata"] if p["status"] == "failed"]
    assert [(p["scope"], p["kind"]) for p in failed] == [(f"{ORG}/app", "issues")]
    assert "has no number" in failed[0]["error"]
    issues = world.store / "repos" / "app" / "issues"
    assert sorted(int(p.stem) for p in issues.glob("*.json")) == sorted(
        n for n in gh.repo_meta[f"{ORG}/app"].issues if n != odd
    )

    gh._meta_route = route  # type: ignore[method-assign]
    second = world.run("--metadata=issues")
    assert second.returncode == 0, second.stderr[-3000:]
    assert world.doc("repos", "app", "issues", f"{odd}.json")["issue"]["number"] == odd


def test_a_team_listed_without_its_id_deletes_no_team(world: World) -> None:
    """A team listed without its id cannot be told from the stored ones: the part fails
    naming the entry (exit 1), no stored team is removed, and the next run stores it."""
    world.repo("app")
    gh = world.github
    gh.team(ORG, "platform", members=("alice",))
    gh.team(ORG, "security", members=("bob",))
    assert world.run("--metadata=org").returncode == 0
    stored = sorted(p.name for p in (world.store / "org" / "teams").glob("*.json"))
    assert len(stored) == 2
    gh.team(ORG, "frontend", members=("carol",))  # the list changes: it is read again
    route = _list_rewritten(
        gh, f"/orgs/{ORG}/teams", lambda t: t | {"id": None} if t["slug"] == "platform" else t
    )
    second = world.run("--metadata=org")
    assert second.returncode == 1, second.stderr[-3000:]
    failed = [p for p in world.report()["metadata"] if p["status"] == "failed"]
    assert [p["kind"] for p in failed] == ["org/teams"]
    assert f"entry 1 of /orgs/{ORG}/teams has no id" in failed[0]["error"]
    after = sorted(p.name for p in (world.store / "org" / "teams").glob("*.json"))
    assert set(stored) < set(after)  # platform's document kept, frontend's added

    gh._meta_route = route  # type: ignore[method-assign]
    assert world.run("--metadata=org").returncode == 0
    assert len(list((world.store / "org" / "teams").glob("*.json"))) == 3


def test_state_that_cannot_be_saved_is_named_and_the_run_still_commits(world: World) -> None:
    """The ETags and high-water marks cannot be written (a folder is in their way): the run
    commits what it read, names the state as failed (exit 1), no traceback, and the next run
    reads everything again instead of trusting a state it never saved."""
    world.repo("app")
    world.github.populate(f"{ORG}/app", issues=3)
    assert world.run("--metadata=issues").returncode == 0
    state = world.store / ".git" / "github-org-backup" / "state.json"
    state.unlink()
    (state / "in-the-way").mkdir(parents=True)
    world.github.populate(f"{ORG}/app", issues=1)
    result = world.run("--metadata=issues")
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    failed = [p for p in world.report()["metadata"] if p["status"] == "failed"]
    assert [p["kind"] for p in failed] == ["state"], failed
    assert world.report()["summary"]["metadata"]["commit"] is not None
    assert len(list((world.store / "repos" / "app" / "issues").glob("*.json"))) == 4


def test_verify_repos_checks_the_metadata_store(world: World) -> None:
    """verify --repos passes on a fresh store, then names an asset whose bytes changed
    (--deep) and a committed document that is no longer JSON."""
    world.repo("app")
    world.github.populate(f"{ORG}/app", issues=2, releases=1)
    assert world.run("--metadata").returncode == 0
    verify = ["verify", "--repos", str(world.dest), "--report", str(world.tmp / "v.json")]
    env = {"GITHUB_API_URL": world.github.url}
    ok = run_cli(verify, world.tmp, env=env, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads((world.tmp / "v.json").read_text())["summary"]["metadata_stores"] == 1

    sha = world.doc("repos", "app", "assets.json")[0]["sha256"]
    held = world.dest / ORG / "assets" / "sha256" / sha
    held.write_bytes(bytes([held.read_bytes()[0] ^ 1]) + held.read_bytes()[1:])
    broken = run_cli([*verify, "--deep"], world.tmp, env=env, timeout=120)
    assert broken.returncode == 1
    assert f"{ORG}/metadata: asset" in broken.stdout and "sha256" in broken.stdout

    (world.store / "repos" / "app" / "labels.json").write_text("{not json")
    world.git("-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qam", "broken")
    corrupt = run_cli(verify, world.tmp, env=env, timeout=120)
    assert corrupt.returncode == 1
    assert f"{ORG}/metadata: repos/app/labels.json is not JSON" in corrupt.stdout


def test_more_changes_than_a_page_are_read_with_since(world: World) -> None:
    """After more new comments than the newest page holds, the run asks for the comments
    changed since the last run (``since``), and stores each of them."""
    world.repo("app")
    gh = world.github
    gh.populate(f"{ORG}/app", issues=3, comments_per_issue=1)
    assert world.run("--metadata=issues").returncode == 0
    for k in range(130):
        gh.comment(f"{ORG}/app", 1 + k % 3, f"Later comment {k}.")
    gh.reset_counts()

    assert world.run("--metadata=issues").returncode == 0

    asked = [p for p in gh.requests if p.startswith(f"/repos/{ORG}/app/issues/comments")]
    assert any("since=" in p for p in asked), asked
    bodies = {
        c["body"]
        for n in (1, 2, 3)
        for c in world.doc("repos", "app", "issues", f"{n}.json")["comments"]
    }
    assert {f"Later comment {k}." for k in range(130)} <= bodies


def test_a_store_path_taken_by_something_else_fails_the_metadata_not_the_mirrors(
    world: World,
) -> None:
    """DEST/OWNER/metadata that is not a store: the metadata fails with what to do, exit 1,
    and the mirrors are made."""
    world.repo("app")
    (world.store).mkdir(parents=True)
    (world.store / "notes.txt").write_text("mine")
    result = world.run("--metadata")
    assert result.returncode == 1, result.stderr[-3000:]
    failed = [p for p in world.report()["metadata"] if p["status"] == "failed"]
    assert failed and "not a metadata store" in failed[0]["error"]
    assert (world.dest / ORG / "app.git").is_dir()
    assert (world.store / "notes.txt").read_text() == "mine"


def test_counts_reach_the_metrics_the_job_summary_and_the_progress_lines(world: World) -> None:
    """The metrics file, the job summary and the progress events carry the metadata counts
    per kind; a failed asset is named in the summary."""
    _small_org(world)
    world.github.delay_s = 0.02
    release = world.github.add_release(f"{ORG}/lib", "v0.1.0", assets={"bad.bin": b"b" * 50})
    world.github.tamper_asset(release.assets[0].id)
    metrics, summary = world.tmp / "metrics.prom", world.tmp / "summary.md"
    result = world.run(
        "--metadata",
        "--metrics-file",
        str(metrics),
        "--progress-interval",
        "1",
        env={"GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert result.returncode == 1, result.stderr[-3000:]
    text = metrics.read_text()
    assert re.search(r'_repos_metadata_documents_written\{kind="issues"\} 129\.0', text), text
    assert re.search(r'_repos_metadata_assets\{outcome="failed"\} 1\.0', text)
    assert re.search(r'_repos_metadata_assets\{outcome="downloaded"\} 2\.0', text)
    assert "_repos_metadata_github_requests_counted" in text
    shown = summary.read_text()
    assert "issues documents written" in shown and "| 129 |" in shown
    assert "bad\\.bin" in shown
    progress = [
        json.loads(line)
        for line in (result.stdout + result.stderr).splitlines()
        if '"progress"' in line
    ]
    assert progress and "metadata_documents_written" in progress[-1], progress


def test_sigterm_mid_metadata_commits_what_was_read_and_the_next_run_completes(
    world: World,
) -> None:
    """SIGTERM while the metadata is being read: exit 143 with the report written, what was
    read is committed (no half-written tree), and the next run backs up the rest."""
    for name in ("a", "b", "c"):
        world.repo(name)
        world.github.populate(f"{ORG}/{name}", issues=30, comments_per_issue=1, pulls=5)
    world.github.delay_s = 0.05
    env = {"GITHUB_TOKEN": world.token, "GITHUB_API_URL": world.github.url}
    process = subprocess.Popen(
        [*COMMAND, *world.args("--metadata")],
        env=cli_env(world.tmp, env),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(world.store.glob("repos/a/issues/*.json")):
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err[-3000:]
    assert b"Traceback" not in err
    assert world.report()["summary"]["interrupted"] is True
    assert world.git("status", "--porcelain") == ""
    assert not (world.store / ".git" / "github-org-backup" / "state.json").exists()

    world.github.delay_s = 0
    assert world.run("--metadata").returncode == 0
    for name in ("a", "b", "c"):
        assert len(list((world.store / "repos" / name / "issues").glob("*.json"))) == 35
