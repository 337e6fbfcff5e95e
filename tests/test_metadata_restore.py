"""`restore-metadata` against the GitHub stand-in, from a store `repos --metadata` wrote: releases
with their assets into a new repository (bytes equal by sha256, the token only to the API), a
tampered asset failing its release alone, issues exported in the replay form and replayed,
an upload URL on another host refused unsent, and --as-of reading an earlier run."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.harness.clirun import run_cli
from tests.harness.github_meta import GitHubOrgStandIn, Json, Release, RepoMeta
from tests.harness.gitserver import GitServer
from tests.harness.repos_world import ReposPlaces

pytestmark = pytest.mark.integration  # git, and the CLI as a subprocess

ORG = "acme"
TARGET = f"{ORG}/restored"


@dataclass
class RestoreStandIn(GitHubOrgStandIn):
    """A stand-in whose releases name an upload URL on ``upload_base``, once it is set, and
    whose ``refuse_post``-th POST from then on meets GitHub's secondary rate limit before it
    is acted on, as on GitHub."""

    upload_base: str = ""
    refuse_post: int | None = None

    def _answer(
        self, method: str, raw: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        if method == "POST" and self.refuse_post is not None:
            self.refuse_post -= 1
            if self.refuse_post == 0:
                self.refuse_post = None
                message = {"message": "You have exceeded a secondary rate limit."}
                return 403, json.dumps(message).encode(), {"Retry-After": "1"}
        return super()._answer(method, raw, headers, body)

    def _release_json(self, meta: RepoMeta, item: Release) -> Json:
        answer = super()._release_json(meta, item)
        if self.upload_base:
            answer["upload_url"] = (
                f"{self.upload_base}/repos/{meta.full_name}/releases/{item.id}/assets"
                "{?name,label}"
            )
        return answer


@dataclass
class World(ReposPlaces):
    server: GitServer
    github: RestoreStandIn
    token: str
    tmp: Path

    def repo(self, name: str, **kw: Any) -> None:
        self.server.create(ORG, name)
        self.github.add_repo_metadata(f"{ORG}/{name}", **kw)

    def backup(self) -> str:
        """A `repos --metadata` run: the store's new commit."""
        env = {"GITHUB_TOKEN": self.token, "GITHUB_API_URL": self.github.url}
        result = run_cli(self.args("--metadata"), self.tmp, env=env, timeout=240)
        assert result.returncode == 0, result.stderr[-3000:]
        return self.git("rev-parse", "HEAD").strip()

    def restore(
        self, *extra: str, env: dict[str, str] | None = None, token: bool = True
    ) -> subprocess.CompletedProcess[str]:
        environment = {"GITHUB_API_URL": self.github.url} | (
            {"GITHUB_TOKEN": self.token} if token else {}
        )
        args = [
            "restore-metadata",
            "--from",
            str(self.store),
            "--report",
            str(self.report_path),
            "--log-format",
            "json",
            "--write-interval",
            "0",
            *extra,
        ]
        return run_cli(args, self.tmp, env=environment | (env or {}), timeout=240)

    def target(self) -> RepoMeta:
        return self.github.repo_meta[TARGET]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    token = "ghp_" + secrets.token_hex(18)
    server = GitServer(tmp_path / "server", tokens={token}).start()
    github = RestoreStandIn(server.url, tokens={token: "restore-bot"}).start()
    github.org(ORG, name="Acme Corp")
    yield World(server, github, token, tmp_path)
    github.stop()
    server.stop()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _token_kept_to_the_api(world: World) -> None:
    """Every request the stand-in's API saw carried the token; its storage host got none."""
    assert world.github.received
    for _, headers in world.github.received:
        assert headers.get("Authorization") == f"Bearer {world.token}"
    for _, headers in world.github.storage_received:
        assert world.token not in json.dumps(headers)


def test_releases_and_their_assets_are_restored_into_a_new_repository(world: World) -> None:
    """Each release is created with its tag, name, body and flags, and its assets uploaded
    with the backed-up bytes; a second run skips what is there and says so."""
    world.repo("app")
    gh = world.github
    tool, sums = b"tool bytes " * 5000, b"0123abcd  tool.tgz\n"
    first = gh.add_release(
        f"{ORG}/app", "v1.0.0", name="One", body="The first.", assets={"tool.tgz": tool}
    )
    gh.add_asset(f"{ORG}/app", first.id, "SHA256SUMS", sums)
    gh.add_release(f"{ORG}/app", "v1.1.0-rc1", body="Try it.", prerelease=True)
    world.backup()
    gh.add_repo_metadata(TARGET, listed=False)
    gh.reset_counts()

    result = world.restore("--repo", "app", "--to", TARGET, "--releases")

    assert result.returncode == 0, result.stderr[-3000:]
    made = {r.tag_name: r for r in world.target().releases.values()}
    assert set(made) == {"v1.0.0", "v1.1.0-rc1"}
    one = made["v1.0.0"]
    assert (one.name, one.body, one.prerelease, one.draft) == ("One", "The first.", False, False)
    assert {a.name: _sha(a.data) for a in one.assets} == {
        "tool.tgz": _sha(tool),
        "SHA256SUMS": _sha(sums),
    }
    assert made["v1.1.0-rc1"].prerelease and made["v1.1.0-rc1"].assets == []
    assert one.author == "restore-bot"  # GitHub keeps no author given through its API
    summary = world.report()["summary"]
    assert summary["releases_created"] == 2 and summary["assets_uploaded"] == 2
    assert summary["asset_bytes_uploaded"] == len(tool) + len(sums)
    uploads = [c for c in gh.calls if c.startswith(f"POST /repos/{TARGET}/releases/")]
    assert len(uploads) == 2 and all("/assets?name=" in c for c in uploads)
    assert not gh.storage_received  # the bytes came from the backup, not from GitHub
    _token_kept_to_the_api(world)
    assert world.token not in result.stdout + result.stderr + world.report_path.read_text()

    again = world.restore("--repo", "app", "--to", TARGET, "--releases")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "release_skipped" in again.stderr and "already has a release" in again.stderr
    assert len(world.target().releases) == 2
    assert world.report()["summary"]["releases_skipped"] == 2


def test_a_tampered_asset_fails_its_release_and_nothing_of_it_is_sent(world: World) -> None:
    """An asset file of the backup whose bytes changed: its release fails before it is created
    (exit 1), and the other release is restored with its asset."""
    world.repo("app")
    gh = world.github
    gh.add_release(f"{ORG}/app", "v1.0.0", assets={"old.bin": b"old " * 300})
    gh.add_release(f"{ORG}/app", "v2.0.0", assets={"new.bin": b"new " * 300})
    world.backup()
    held = world.dest / ORG / "assets" / "sha256" / _sha(b"old " * 300)
    held.write_bytes(b"OLD " + held.read_bytes()[4:])  # the same size, other bytes
    gh.add_repo_metadata(TARGET, listed=False)
    gh.reset_counts()

    result = world.restore("--repo", "app", "--to", TARGET, "--releases")

    assert result.returncode == 1, result.stderr[-3000:]
    assert [r.tag_name for r in world.target().releases.values()] == ["v2.0.0"]
    assert [a.name for r in world.target().releases.values() for a in r.assets] == ["new.bin"]
    assert not any("name=old.bin" in c for c in gh.calls)
    failed = [r for r in world.report()["releases"] if r["status"] == "failed"]
    assert [r["tag"] for r in failed] == ["v1.0.0"]
    assert "sha256" in failed[0]["error"] and "nothing of release v1.0.0" in failed[0]["error"]
    assert "release_failed" in result.stderr


def _issues(world: World) -> None:
    world.repo("app")
    gh, app = world.github, f"{ORG}/app"
    crash = gh.issue(app, "Crash on start", "It crashes, @carol.", user="alice", labels=("bug",))
    gh.comment(app, crash.number, "Me too.", user="bob")
    gh.issue(app, "Old idea", "Maybe later.", user="carol", state="closed")
    fix = gh.pull(app, "Fix the crash", "Fixes #1.", user="dave", merged=True, head="fix")
    gh.review(app, fix.number, body="Good.", user="erin")
    gh.review_comment(app, fix.number, "Why here?", user="erin", path="src/main.c", line=7)


def test_issues_are_exported_in_the_replay_form_and_replayed(world: World) -> None:
    """The export (made without a token) heads each body and comment with what GitHub will
    not keep; its replay creates the issues in order, with their comments, labels and state."""
    _issues(world)
    world.backup()
    export = world.tmp / "issues.jsonl"

    exported = world.restore("--repo", "app", "--export-issues", str(export), token=False)

    assert exported.returncode == 0, exported.stderr[-3000:]
    records = [json.loads(line) for line in export.read_text().splitlines()]
    assert [r["original"]["number"] for r in records] == [1, 2, 3]
    crash, idea, fix = records
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
    assert re.match(rf"> Originally `{ORG}/app#1` by `@alice` on {stamp}\.\n\n", crash["body"])
    assert crash["body"].endswith("It crashes, @carol.")
    assert crash["labels"] == ["bug"] and crash["state"] == "open"
    assert re.match(
        rf"> Originally by `@bob` on {stamp}\.\n\nMe too\.$", crash["comments"][0]["body"]
    )
    assert idea["state"] == "closed" and idea["state_reason"] == "completed"
    assert re.match(
        rf"> Originally `{ORG}/app#2` by `@carol` on {stamp}, closed on {stamp}\.", idea["body"]
    )
    assert fix["original"]["pull_request"] is True and fix["state"] == "closed"
    assert f"pull request `{ORG}/app#3` by `@dave`" in fix["body"] and "merged on" in fix["body"]
    assert "cannot be re-created without its branches" in fix["body"]
    kinds = [c["original"]["kind"] for c in fix["comments"]]
    assert kinds == ["review", "review_comment"]
    assert (
        "a review by `@erin`" in fix["comments"][0]["body"]
        and "approved" in fix["comments"][0]["body"]
    )
    assert "on `src/main.c` line 7" in fix["comments"][1]["body"]
    assert world.report()["summary"]["issues_exported"] == 3

    world.github.add_repo_metadata(TARGET, listed=False)
    world.github.reset_counts()
    replayed = world.restore("--repo", "app", "--to", TARGET, "--issues-from", str(export))

    assert replayed.returncode == 0, replayed.stderr[-3000:]
    target = world.target()
    made = [target.issues[n] for n in sorted(target.issues)]
    assert [(i.title, i.body, i.state) for i in made] == [
        (r["title"], r["body"], r["state"]) for r in records
    ]
    assert all(i.user == "restore-bot" and i.pull is None for i in made)
    assert [target.labels[x].name for x in made[0].labels] == ["bug"]
    comments = sorted(target.comments.values(), key=lambda c: c.id)
    assert [(c.issue, c.body) for c in comments] == [
        (made[i].number, c["body"]) for i, r in enumerate(records) for c in r["comments"]
    ]
    issues = world.report()["issues"]
    assert [(i["original"], i["number"], i["status"]) for i in issues] == [
        (1, made[0].number, "created"),
        (2, made[1].number, "created"),
        (3, made[2].number, "created"),
    ]
    _token_kept_to_the_api(world)


class _Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str, dict[str, str]]]] = []

    def _record(self) -> None:
        self.seen.append((self.command, self.path, dict(self.headers.items())))
        self.send_response(201)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = do_PUT = _record

    def log_message(self, *args: object) -> None:
        pass


def test_an_upload_url_on_another_host_is_refused_unsent(world: World) -> None:
    """A release whose upload_url names another host than the API's: nothing goes there, the
    release fails saying why (exit 1)."""
    world.repo("app")
    world.github.add_release(f"{ORG}/app", "v1.0.0", assets={"tool.tgz": b"t" * 2000})
    world.backup()
    world.github.add_repo_metadata(TARGET, listed=False)
    elsewhere = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=elsewhere.serve_forever, daemon=True).start()
    _Recorder.seen = []
    try:
        world.github.upload_base = f"http://localhost:{elsewhere.server_address[1]}"
        result = world.restore("--repo", "app", "--to", TARGET, "--releases")
    finally:
        elsewhere.shutdown()
        elsewhere.server_close()

    assert result.returncode == 1, result.stderr[-3000:]
    assert _Recorder.seen == []
    failed = world.report()["releases"][0]
    assert failed["status"] == "failed"
    assert "refused unsent" in failed["error"] and "localhost" in failed["error"]
    assert "delete it there and run again" in failed["error"]
    assert world.token not in result.stdout + result.stderr


def test_as_of_restores_what_an_earlier_run_kept(world: World) -> None:
    """An issue edited after the first run: --as-of that run's commit replays its first body;
    by default the last run's; a time before every run, or an unknown commit, is a usage
    error naming the store's log."""
    world.repo("app")
    gh = world.github
    gh.issue(f"{ORG}/app", "Plans", "First words.", user="alice")
    first = world.backup()
    gh.edit_issue(f"{ORG}/app", 1, body="Second words.")
    assert world.backup() != first
    gh.add_repo_metadata(TARGET, listed=False)

    result = world.restore("--repo", "app", "--as-of", first, "--to", TARGET, "--issues")

    assert result.returncode == 0, result.stderr[-3000:]
    (made,) = world.target().issues.values()
    assert made.body is not None and made.body.endswith("First words.")
    assert world.report()["summary"]["commit"] == first
    latest = world.restore("--repo", "app", "--export-issues", "-", token=False)
    assert latest.returncode == 0, latest.stderr[-3000:]
    assert json.loads(latest.stdout)["body"].endswith("Second words.")
    early = world.restore("--repo", "app", "--as-of", "2000-01-01", "--export-issues", "-")
    assert early.returncode == 2 and "no run at or before it" in early.stderr
    unknown = world.restore("--repo", "app", "--as-of", "f" * 40, "--export-issues", "-")
    assert unknown.returncode == 2 and "no such commit" in unknown.stderr
    assert "log" in unknown.stderr


def test_what_cannot_go_on_says_what_to_do(world: World) -> None:
    """No store, an unknown repository, a target that does not exist and no token: exit 2,
    one plain sentence each, nothing created."""
    world.repo("app")
    world.github.add_release(f"{ORG}/app", "v1.0.0")
    world.backup()

    nowhere = run_cli(
        [
            "restore-metadata",
            "--from",
            str(world.tmp / "none"),
            "--repo",
            "app",
            "--export-issues",
            "-",
        ],
        world.tmp,
    )
    assert nowhere.returncode == 2 and "no such directory" in nowhere.stderr
    unknown = world.restore("--repo", "nope", "--export-issues", "-")
    assert unknown.returncode == 2 and "holds app" in unknown.stderr
    absent = world.restore("--repo", "app", "--to", TARGET, "--releases")
    assert absent.returncode == 2, absent.stderr[-3000:]
    assert "create the repository first" in absent.stderr
    no_token = world.restore("--repo", "app", "--to", TARGET, "--releases", token=False)
    assert no_token.returncode == 2 and "no GitHub token" in no_token.stderr
    assert TARGET not in world.github.repo_meta


def test_a_rate_limited_write_is_sent_again_after_the_wait_and_nothing_doubles(
    world: World,
) -> None:
    """GitHub's secondary limit on a POST (403, Retry-After): the replay waits, sends it
    again, and every issue and comment exists once."""
    _issues(world)
    world.backup()
    world.github.add_repo_metadata(TARGET, listed=False)
    world.github.refuse_post = 2  # the first comment

    result = world.restore("--repo", "app", "--to", TARGET, "--issues")

    assert result.returncode == 0, result.stderr[-3000:]
    assert "github_rate_limit_wait" in result.stderr
    target = world.target()
    assert [i.title for i in target.issues.values()] == [
        "Crash on start",
        "Old idea",
        "Fix the crash",
    ]
    assert len(target.comments) == 3  # one comment, one review, one review comment
    assert world.report()["summary"]["comments_created"] == 3


@pytest.mark.parametrize(
    ("upload_url", "api_url", "origin"),
    [
        (
            "https://uploads.github.com/repos/a/b/releases/1/assets{?name,label}",
            "https://api.github.com",
            "https://uploads.github.com",
        ),
        (
            "https://ghe.example.com/api/uploads/repos/a/b/releases/1/assets{?name,label}",
            "https://ghe.example.com/api/v3",
            "https://ghe.example.com",
        ),
        ("https://uploads.github.com/x", "https://ghe.example.com/api/v3", None),
        ("http://uploads.github.com/x", "https://api.github.com", None),
        ("https://uploads.github.com:8443/x", "https://api.github.com", None),
        ("https://ghe.example.com:8443/x", "https://ghe.example.com/api/v3", None),
        ("https://user@ghe.example.com/x", "https://ghe.example.com/api/v3", None),
        ("https://evil.example/x{?name}", "https://api.github.com", None),
    ],
)
def test_the_token_goes_to_an_upload_host_only_beside_its_api(
    upload_url: str, api_url: str, origin: str | None
) -> None:
    """uploads.github.com for api.github.com, the API's own origin otherwise, nothing else."""
    from github_org_backup.errors import GitHubAnswerInvalid
    from github_org_backup.metadata.publish import upload_origin

    if origin is None:
        with pytest.raises(GitHubAnswerInvalid, match="refused unsent"):
            upload_origin(upload_url, api_url)
    else:
        assert upload_origin(upload_url, api_url)[0] == origin
